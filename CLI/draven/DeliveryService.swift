import DravenCore
import DravenOutbound
import Foundation

/// `draven sweep --every`'s delivery service: the other end of `Handoff.nudge`. Bound to
/// `Paths.deliverSocket` (a datagram socket, mode 0600, in the state directory), it takes the
/// ids of the outbox rows each function committed and delivers them at once from this warm
/// process, instead of the function exec'ing a new `draven-deliver` that first spends ~8 ms
/// loading libcurl. A plan's next dispatch, a freed lock's next job and a notification all
/// leave sooner, and the request's CPU is not spent starting a second program.
///
/// - Each worker thread has its own connection and delivers one datagram's rows (and the rows
///   they lead to) with `Delivery`, as `draven-deliver` and the sweep pass do: a row goes to
///   whoever claims it first, so nothing is sent twice however the work is shared.
/// - A worker is added when a datagram finds none idle (a slow provider holds one for up to its
///   timeout), up to `maxWorkers`; past that datagrams wait, and once the socket's queue is full
///   functions fall back to exec'ing draven-deliver.
/// - A sweep that dies leaves the socket file behind with nothing bound to it: functions then
///   exec draven-deliver, and the next sweep replaces the file. A second sweep on the same
///   store finds the socket served and leaves it to the first.
final class DeliveryService: @unchecked Sendable {
    let paths: Paths
    let fd: Int32
    let maxWorkers = 16
    private let condition = NSCondition()
    private var batches: [[Int64]] = []
    private var workers = 0
    private var idle = 0

    private init(paths: Paths, fd: Int32) {
        self.paths = paths
        self.fd = fd
    }

    /// Binds the socket and starts receiving; nil (with a warning) when it cannot, or when another
    /// sweep serves this store: deliveries then go on as without the service.
    @discardableResult
    static func start(paths: Paths) -> DeliveryService? {
        let (fd, error) = LocalDatagram.bind(paths.deliverSocket)
        guard let fd else {
            warn("sweep: not serving \(paths.deliverSocket) (\(error ?? "")); functions exec draven-deliver")
            return nil
        }
        _ = CurlTransport()  // libcurl's global initialisation, once, before any thread uses it
        let service = DeliveryService(paths: paths, fd: fd)
        Thread.detachNewThread { service.receive() }
        return service
    }

    private func receive() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while let datagram = LocalDatagram.receive(fd, into: &buffer) {
            let ids = String(decoding: datagram, as: UTF8.self).split(separator: " ").compactMap { Int64($0) }
            guard !ids.isEmpty else { continue }  // another sweep's probe
            condition.lock()
            batches.append(ids)
            let grow = idle < batches.count && workers < maxWorkers
            if grow { workers += 1 }
            condition.signal()
            condition.unlock()
            if grow { Thread.detachNewThread { self.work() } }
        }
        warn("sweep: the delivery socket failed; functions exec draven-deliver")
    }

    /// The next batch, once there is one (this worker counted idle while it waits).
    private func next() -> [Int64]? {
        condition.lock()
        defer { condition.unlock() }
        idle += 1
        while batches.isEmpty { condition.wait() }
        idle -= 1
        return batches.removeFirst()
    }

    private func work() {
        guard let db = try? Database(path: paths.database, create: false) else {
            warn("sweep: a delivery worker cannot open the store")
            condition.lock()
            workers -= 1
            condition.unlock()
            return
        }
        while let ids = next() {
            // A new Delivery per batch: it reads the secrets store afresh, as a new deliverer would.
            var delivery = Delivery(db: db, paths: paths, transport: CurlTransport())
            do {
                try delivery.deliver(ids)
            } catch {
                warn("\(Clock.rfc3339(Clock.now())) sweep: delivering \(ids.count) handed-over rows: \(error)")
            }
        }
    }
}
