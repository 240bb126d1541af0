extension Authenticator {
    /// The job the route's `{id}` names, if the caller holds a `read` grant for its environment
    /// (without one, the job is not found: `Grants.require(_:_:_:job:)`).
    /// - Throws: `.unauthenticated`, `.notFound`.
    package static func readableJob(_ request: Request, _ params: [String: String], _ context: Context) throws -> (
        Database, Job
    ) {
        let principal = try Authenticator.authenticate(request, context)
        let db = try context.db()
        let job = try Job.require(db, id: params.id("id"))
        context.subject = "job/\(job.id)"
        try Grants.require(db, principal, .read, job: job)
        return (db, job)
    }
}
