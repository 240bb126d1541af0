/// Whether the viewer may take one action now and, when not, why: the refusal the API would
/// answer, in its own words (the problem's `detail`), or a console note for what the API accepts
/// but would do nothing with (an approval already counted, a rollback to the release that is
/// live). Built by the read models (`JobActions`, `EnvironmentView`) from the checks the routes run.
package struct Permission: Sendable, Equatable {
    package var allowed: Bool
    /// Why not, for a person to read; nil when allowed.
    package var reason: String?
    /// The refusal the route would answer; nil when allowed or when the reason is the console's.
    package var refusal: DravenError?
    /// When allowed: what taking it would do (e.g. "your approval starts the deploy").
    package var note: String?

    package static func allowed(note: String? = nil) -> Permission {
        Permission(allowed: true, reason: nil, refusal: nil, note: note)
    }

    package static func refused(_ error: DravenError) -> Permission {
        Permission(allowed: false, reason: Problem(error).detail, refusal: error, note: nil)
    }

    /// Not offered by the console, though the API would accept it (it would change nothing).
    package static func pointless(_ reason: String) -> Permission {
        Permission(allowed: false, reason: reason, refusal: nil, note: nil)
    }

    /// Runs `check`: allowed (with what it returns as the note) unless it throws a `DravenError`.
    /// - Throws: any other error (the store's).
    package static func deciding(_ check: () throws -> String?) throws -> Permission {
        do { return .allowed(note: try check()) } catch let error as DravenError { return .refused(error) }
    }
}
