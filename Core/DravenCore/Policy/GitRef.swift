/// A git ref a deploy names, normalised to a kind and a fully qualified name. Jobs store and
/// pipelines receive the qualified form (`refs/tags/v1.2.0`), so a provider resolves exactly
/// the kind the policy checked: a branch named like a tag cannot slip past a tags-only policy.
package enum RefKind: String, Sendable, CaseIterable {
    case branch, tag, sha
}

package struct GitRef: Sendable, Equatable {
    package var kind: RefKind
    /// The short name (`develop`, `v1.2.0`) or the sha.
    package var name: String

    package var qualified: String {
        switch kind {
        case .branch: "refs/heads/" + name
        case .tag: "refs/tags/" + name
        case .sha: name
        }
    }

    /// Reads the `ref` (and optional `ref_kind`) of a request.
    ///
    /// `refs/heads/x` is a branch, `refs/tags/x` a tag, 40 or 64 hex digits a commit. A short
    /// name needs `ref_kind`, unless the environment's policy allows only one kind, which is
    /// then used (`v1.2.0` on a tags-only environment means `refs/tags/v1.2.0`).
    /// - Throws: `DravenError.invalidField` naming `/ref` or `/ref_kind`.
    package static func parse(_ raw: String, kind: String?, policyKinds: Set<RefKind>) throws -> GitRef {
        var explicit: RefKind?
        if let kind {
            guard let k = RefKind(rawValue: kind) else {
                throw DravenError.invalidField(pointer: "/ref_kind", reason: "must be branch, tag or sha")
            }
            explicit = k
        }
        let ref: GitRef
        if raw.hasPrefix("refs/heads/") {
            ref = GitRef(kind: .branch, name: String(raw.dropFirst(11)))
        } else if raw.hasPrefix("refs/tags/") {
            ref = GitRef(kind: .tag, name: String(raw.dropFirst(10)))
        } else if raw.hasPrefix("refs/") {
            throw DravenError.invalidField(
                pointer: "/ref", reason: "only refs/heads/… and refs/tags/… can be deployed")
        } else if let explicit {
            ref = GitRef(kind: explicit, name: raw)
        } else if isCommitSHA(raw) {
            ref = GitRef(kind: .sha, name: raw)
        } else {
            let named = policyKinds.subtracting([.sha])
            guard named.count == 1, let only = named.first else {
                throw DravenError.invalidField(
                    pointer: "/ref",
                    reason:
                        "'\(raw)' could be a branch or a tag; send refs/heads/\(raw), refs/tags/\(raw) or ref_kind")
            }
            ref = GitRef(kind: only, name: raw)
        }
        if let explicit, explicit != ref.kind {
            throw DravenError.invalidField(
                pointer: "/ref_kind", reason: "'\(raw)' is a \(ref.kind.rawValue), not a \(explicit.rawValue)")
        }
        if ref.kind == .sha {
            guard isCommitSHA(ref.name) else {
                throw DravenError.invalidField(pointer: "/ref", reason: "a sha is 40 or 64 hex digits")
            }
        } else if let why = invalidRefName(ref.name) {
            throw DravenError.invalidField(pointer: "/ref", reason: why)
        }
        return ref
    }

    package static func isCommitSHA(_ s: String) -> Bool {
        (s.utf8.count == 40 || s.utf8.count == 64)
            && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Why `name` is not a valid branch or tag name (git check-ref-format, plus no leading `-`
    /// so it can never be read as an option), or nil.
    static func invalidRefName(_ name: String) -> String? {
        let u = Array(name.utf8)
        if u.isEmpty { return "is empty" }
        if u.count > 200 { return "is longer than 200 bytes" }
        if u.first == UInt8(ascii: "-") { return "may not start with '-'" }
        if u.first == UInt8(ascii: "/") || u.last == UInt8(ascii: "/") || u.last == UInt8(ascii: ".") {
            return "may not start or end with '/' or end with '.'"
        }
        if u.count >= 5, u[(u.count - 5)...].elementsEqual(".lock".utf8) { return "may not end with .lock" }
        // Byte pairs, not String.contains (which brings in generic substring search: ~90k instructions).
        for bad in ["..", "//", "@{", "/."] {
            let (a, b) = (bad.utf8.first!, bad.utf8.last!)
            if zip(u, u.dropFirst()).contains(where: { $0 == a && $1 == b }) { return "may not contain '\(bad)'" }
        }
        if u == [UInt8(ascii: "@")] { return "may not be '@'" }
        for c in u where c < 0x21 || c == 0x7f || "~^:?*[\\".utf8.contains(c) {
            return "may not contain spaces, control characters or any of ~^:?*[\\"
        }
        return nil
    }
}
