/// Why the secrets store refused. Messages name files, entries and generations, never bytes.
package enum SecretsError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file's signature, structure or a record does not verify.
    case tampered(String)
    /// The file is older than one this installation has already seen.
    case rollback(file: UInt64, seen: UInt64)
    /// A different file with the generation already seen: the signing key was misused.
    case equivocation(generation: UInt64)
    /// The database has no generation record for the store and no signed floor vouches for the
    /// file (the record was deleted, perhaps to roll the file back): refused, never re-seeded.
    case unanchored(String)
    /// The master key does not open this store (or the store was made for another).
    case wrongKey(String)
    /// A key or store file is readable or writable by more than it should be.
    case badPermissions(path: String, reason: String)
    case missing(String)
    case notFound(name: String)
    case invalid(String)

    package var description: String {
        switch self {
        case .tampered(let why): "secrets store tampered: \(why)"
        case .rollback(let file, let seen):
            "secrets store rolled back: file generation \(file) is older than generation \(seen) already seen "
                + "(restoring a backup? run `draven secrets verify --accept-rollback \(file)`)"
        case .unanchored(let why): "secrets store generation unknown: \(why)"
        case .equivocation(let g): "secrets store equivocation: a different file also claims generation \(g)"
        case .wrongKey(let why): "secrets master key does not open this store: \(why)"
        case .badPermissions(let path, let why): "\(path): \(why)"
        case .missing(let what): what
        case .notFound(let name): "no secret named \(name)"
        case .invalid(let why): why
        }
    }

    /// The CLI's exit code (secrets.md §4.9).
    package var exitCode: Int32 {
        switch self {
        case .notFound: 3
        case .tampered: 4
        case .rollback, .equivocation, .unanchored: 5
        case .wrongKey: 6
        case .badPermissions: 7
        case .missing, .invalid: 2
        }
    }
}
