/// Reads of the `people` and `chat_identities` tables (`ConfigApply` is their only writer):
/// who a handle or a chat user is, among the people not disabled.
package enum People {
    /// The id of the enabled person with `handle`.
    package static func enabledID(_ db: Database, handle: String) throws -> Int64? {
        try db.scalar("SELECT id FROM people WHERE handle = ?1 AND disabled = 0", [.text(handle)])
    }

    /// The enabled person linked to `userID` on chat `platform`.
    package static func linked(_ db: Database, platform: String, userID: String) throws
        -> (id: Int64, handle: String)?
    {
        try db.first(
            """
            SELECT p.id, p.handle FROM chat_identities c JOIN people p ON p.id = c.person_id
            WHERE c.platform = ?1 AND c.user_id = ?2 AND p.disabled = 0
            """, [.text(platform), .text(userID)]
        ) { (id: $0.int(0), handle: $0.text(1)) }
    }
}
