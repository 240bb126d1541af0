/// The console's overview: for every environment a person may read (a `read` grant), what is live,
/// what runs, what waits and why, and how the last job ended. Built from a fixed handful of
/// store-wide queries (`Overview+Reads.swift`, each in its owner), whatever the number of
/// environments; jobs awaiting approval cost one tally for all of them, and per environment the
/// reads of who may still approve (`JobDecider.progress`, the vote's own checks).
package struct Overview: Sendable {
    /// One project × environment cell.
    package struct Cell: Sendable {
        package var project: String
        package var environment: String
        package var live: (release: Releases.Release, by: String)?
        /// The job holding the lock (dispatching or running), with its lock.
        package var running: (job: Job, lock: Locks.Held?)?
        /// Queued jobs, in the order they will take the lock.
        package var queued: [Job] = []
        /// Jobs awaiting approval, each with where it stands (`JobDecider.progress`).
        package var awaiting: [(job: Job, standing: ApprovalProgress)] = []
        /// Jobs just created and not yet moved on (pending).
        package var pending: [Job] = []
        package var last: Job?
        /// The newest refused request about the environment in the last day (`Audit.recentRefusals`):
        /// who, when, and the problem's detail (the policy rule, the grant, the busy lock).
        package var refused: Audit.Record?
    }

    /// Cells by project, projects and environments in name order.
    package var projects: [(name: String, cells: [Cell])]
    /// Which page of the readable environments this is (1-based), of how many, and how many
    /// environments match in all: a page holds at most `pageSize` of them, so it stays small and
    /// fast whatever the number of environments (Argo CD's overview of 4,200 applications took two
    /// minutes to load).
    package var page = 1
    package var pages = 1
    package var total = 0

    package static let pageSize = 40

    /// Which environments to show: a project (exact name, or a prefix ending in `*`) and a page.
    package struct Filter: Sendable {
        package var project: String?
        package var page: Int

        package init(project: String? = nil, page: Int = 1) {
            self.project = project
            self.page = page
        }

        func matches(_ name: String) -> Bool {
            guard let project, !project.isEmpty else { return true }
            if project.hasSuffix("*") { return name.hasPrefix(project.dropLast()) }
            return name == project
        }
    }

    /// - Parameter viewer: only environments they may read are included.
    package static func load(
        _ db: Database, viewer: Principal, now: Int64 = Clock.now(), filter: Filter = Filter()
    ) throws -> Overview {
        let readable = try Grants.environments(db, person: viewer.personID, action: .read).filter {
            filter.matches($0.project)
        }
        let pages = max(1, (readable.count + pageSize - 1) / pageSize)
        let page = min(max(filter.page, 1), pages)
        let shown = readable.dropFirst((page - 1) * pageSize).prefix(pageSize)
        var index: [Int64: Int] = [:]
        var cells: [Cell] = []
        cells.reserveCapacity(shown.count)
        for env in shown {
            index[env.id] = cells.count
            cells.append(Cell(project: env.project, environment: env.environment))
        }
        guard !cells.isEmpty else { return Overview(projects: [], page: page, pages: pages, total: readable.count) }
        let ids = shown.map(\.id)
        let live = try Releases.liveAll(db)
        let locks = try Locks.held(db)
        for (env, k) in index { cells[k].live = live[env] }
        var awaiting: [(cell: Int, job: Job)] = []
        for job in try Job.open(db, environments: ids) {
            guard let k = index[job.environmentID] else { continue }
            switch job.state {
            case .dispatching, .running: cells[k].running = (job, locks[job.environmentID])
            case .queued: cells[k].queued.append(job)
            case .awaitingApproval: awaiting.append((k, job))
            default: cells[k].pending.append(job)
            }
        }
        if !awaiting.isEmpty {
            let counted = try Approvals.counted(db, jobs: awaiting.map(\.job.id))
            var decider = JobDecider(db, viewer: viewer, now: now)
            for (k, job) in awaiting {
                cells[k].awaiting.append((job, try decider.progress(job, counted: counted[job.id] ?? [])))
            }
        }
        for job in try Job.lastEnded(db, environments: ids) {
            if let k = index[job.environmentID] { cells[k].last = job }
        }
        let refusals = try Audit.recentRefusals(db, since: now - 86_400)
        if !refusals.isEmpty {
            for k in cells.indices { cells[k].refused = refusals["\(cells[k].project)/\(cells[k].environment)"] }
        }
        var projects: [(name: String, cells: [Cell])] = []
        for cell in cells {
            if projects.last?.name == cell.project {
                projects[projects.count - 1].cells.append(cell)
            } else {
                projects.append((cell.project, [cell]))
            }
        }
        return Overview(projects: projects, page: page, pages: pages, total: readable.count)
    }

    /// A cheap version of everything the overview shows for `person`: it changes whenever a job
    /// moves (job events), anything is audited (votes, sign-ins, configuration), a runner
    /// heartbeats, or the configuration changes. The console's ETag.
    package static func version(_ db: Database, person: Int64) throws -> String {
        let parts = [
            try JobEvent.lastID(db), try Audit.lastID(db), try ConfigApply.currentVersion(db),
            try Job.lastHeartbeat(db), person,
        ]
        return parts.map(String.init).joined(separator: ".")
    }
}

/// A job's runner progress, from its last heartbeat (`{step, percent, message}`).
package struct Progress: Sendable {
    package var step: String?
    package var percent: Int64?
    package var message: String?

    package init?(_ job: Job) {
        guard let text = job.progress, let value = try? JSON.parse(text), value.objectValue != nil else { return nil }
        step = value["step"]?.stringValue
        percent = value["percent"]?.intValue ?? value["percent"]?.doubleValue.map { Int64($0) }
        message = value["message"]?.stringValue
    }
}
