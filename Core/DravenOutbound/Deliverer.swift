import DravenCore
internal import Glibc

/// The `draven-deliver` program: delivers the outbox rows named on its command line.
/// Nothing waits for it, so it reports through the store (outbox rows, job events, audit).
package enum Deliverer {
    package static func run(ids: [Int64]) -> Never {
        let paths = Paths.fromEnvironment()
        do {
            let db = try Database(path: paths.database, create: false)
            var delivery = Delivery(db: db, paths: paths, transport: CurlTransport())
            try delivery.deliver(ids)
            exit(0)
        } catch {
            Log.error("delivery failed", ["error": "\(error)"])
            exit(1)
        }
    }
}
