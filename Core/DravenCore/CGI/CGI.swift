internal import Glibc

/// A draven HTTP function: one request in, one response out.
package protocol Function {
    /// The function's name, for logs and audit (`trigger`, `status`, …).
    static var name: String { get }
    /// Bodies larger than this are refused with 413 before a byte is read.
    /// `DRAVEN_MAX_BODY` (bytes) overrides it for all functions.
    static var maxBodyBytes: Int { get }
    /// The limit for a request to `path`, when a function's routes differ (heartbeat: 4 KiB for a
    /// heartbeat, 96 KiB for a log chunk); `maxBodyBytes` unless a function says otherwise.
    static func maxBodyBytes(path: String) -> Int
    static func respond(to request: Request, context: Context) throws -> Response
}

extension Function {
    package static func maxBodyBytes(path: String) -> Int { maxBodyBytes }
}

/// Runs a `Function` as a CGI/1.1 program (RFC 3875): reads the request from the environment
/// and stdin, writes the response to stdout, and is the only place that turns a thrown error
/// into a problem+json answer. Refusals (`DravenError`) are audited here, in their own
/// transaction, so a refused request changes nothing but the audit trail.
package enum CGI {
    package static func serve<F: Function>(_ function: F.Type) -> Never {
        Database.configureSingleThreaded()
        let context = Context(paths: .fromEnvironment(), function: F.name)
        let response: Response
        var bodyUnread = false
        do {
            let request = try readRequest(limit: { maxBody(default: F.maxBodyBytes(path: $0)) })
            response = handle(F.self, request: request, context: context)
        } catch {
            if case DravenError.bodyTooLarge = error { bodyUnread = true }
            response = answer(error, context: context)
        }
        write(response.cgiBytes())
        // fcgiwrap feeds the whole body to stdin and answers 502 if the program exits first;
        // a body refused as too large is discarded after the answer, never buffered or parsed.
        if bodyUnread { discardInput() }
        // fcgiwrap ends the HTTP response at EOF on stdout; close both so the client is not kept
        // waiting for the outbound calls made after the answer.
        close(1)
        close(2)
        // Only now close the store: closing may checkpoint the WAL, which the client must not wait for.
        let outbox = context.finish()
        if !outbox.isEmpty, !Handoff.nudge(outbox, socket: context.paths.deliverSocket) { Handoff.execDeliver(outbox) }
        _exit(0)  // nothing is buffered (answers and logs go out with write(2)): skip atexit work
    }

    /// The answer to a request already read: `F.respond`'s response, or the problem+json answer for
    /// what it threw (`answer`: refusals audited). `serve` and the in-process tests
    /// (Tests/DravenCoreTests/Harness.swift) both answer through here.
    package static func handle<F: Function>(_ function: F.Type, request: Request, context: Context) -> Response {
        context.request = request
        do {
            return try F.respond(to: request, context: context)
        } catch {
            return answer(error, context: context)
        }
    }

    /// The response for a thrown error, auditing refusals and logging internal errors.
    package static func answer(_ error: any Error, context: Context) -> Response {
        let problem = Problem(any: error, requestID: context.requestID)
        if problem.status >= 500 {
            Log.error(
                "request failed", ["request.id": context.requestID, "function": context.function, "error": "\(error)"])
        }
        if problem.status < 500 {
            context.auditRefusal(problem)
        }
        return problem.response
    }

    static func maxBody(default limit: Int) -> Int {
        Environment.get("DRAVEN_MAX_BODY").flatMap(Int.init) ?? limit
    }

    /// Reads the CGI meta-variables and exactly CONTENT_LENGTH bytes of body.
    /// - Throws: `DravenError.bodyTooLarge` when CONTENT_LENGTH exceeds `limit` (nothing is
    ///   read), `.malformed` when CONTENT_LENGTH is not a number or stdin ends early.
    package static func readRequest(limit: (_ path: String) -> Int) throws -> Request {
        try request(environment: Environment.forEach, limit: limit, body: readBody)
    }

    /// The request `readRequest` reads, from any source of meta-variables and body: the process
    /// environment and stdin in production, bytes in the fuzz target (Tests/Fuzz) and tests.
    /// - Parameters:
    ///   - environment: calls its argument with each variable's name and value bytes.
    ///   - body: reads exactly that many bytes of body, or throws `.malformed`.
    /// Inlined into `readRequest`, so the request path calls `Environment.forEach` directly as before.
    static func request(
        environment: ((UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Void) -> Void,
        limit: Int, body readBody: (Int) throws -> [UInt8]
    ) throws -> Request {
        try request(environment: environment, limit: { _ in limit }, body: readBody)
    }

    /// `request` with the limit chosen by the request's path (`Function.maxBodyBytes(path:)`).
    @inline(__always)
    static func request(
        environment: ((UnsafeBufferPointer<UInt8>, UnsafeBufferPointer<UInt8>) -> Void) -> Void,
        limit limitFor: (_ path: String) -> Int, body readBody: (Int) throws -> [UInt8]
    ) throws -> Request {
        var headers: [String: String] = [:]
        var meta: [String: String] = [:]
        headers.reserveCapacity(32)
        meta.reserveCapacity(32)
        environment { name, value in
            if name.starts(with: "HTTP_".utf8) {
                headers[headerName(UnsafeBufferPointer(rebasing: name[5...]))] = String(decoding: value, as: UTF8.self)
            } else {
                meta[String(decoding: name, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
            }
        }
        let length: Int
        if let raw = meta["CONTENT_LENGTH"], !raw.isEmpty {
            guard let n = Int(raw), n >= 0 else { throw DravenError.malformed("CONTENT_LENGTH is not a number") }
            length = n
        } else {
            length = 0
        }
        var path = meta["PATH_INFO"] ?? ""
        if path.isEmpty {
            let uri = meta["REQUEST_URI"] ?? meta["DOCUMENT_URI"] ?? "/"
            path = String(uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "/")
        }
        let limit = limitFor(path)
        guard length <= limit else { throw DravenError.bodyTooLarge(limit: limit) }
        let body = try readBody(length)
        if let contentType = meta["CONTENT_TYPE"], !contentType.isEmpty { headers["content-type"] = contentType }
        var request = Request(
            method: meta["REQUEST_METHOD"] ?? "GET",
            path: path,
            query: meta["QUERY_STRING"] ?? "",
            headers: headers,
            contentType: headers["content-type"],
            body: body,
            remoteAddress: meta["REMOTE_ADDR"] ?? ""
        )
        request.isTLS = meta["HTTPS"]?.lowercased() == "on"
        return request
    }

    /// `X_HUB_SIGNATURE_256` → `x-hub-signature-256` (RFC 3875 §4.1.18, reversed), bytewise.
    static func headerName(_ cgi: UnsafeBufferPointer<UInt8>) -> String {
        String(unsafeUninitializedCapacity: cgi.count) { out in
            for (k, c) in cgi.enumerated() {
                out[k] = c == UInt8(ascii: "_") ? UInt8(ascii: "-") : (c >= 0x41 && c <= 0x5A ? c | 0x20 : c)
            }
            return cgi.count
        }
    }

    private static func readBody(_ length: Int) throws -> [UInt8] {
        guard length > 0 else { return [] }
        var body = [UInt8](repeating: 0, count: length)
        var got = 0
        while got < length {
            let n = body.withUnsafeMutableBytes { read(0, $0.baseAddress! + got, length - got) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw DravenError.malformed("the body ended after \(got) of \(length) bytes") }
            got += n
        }
        return body
    }

    private static func discardInput() {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return }
        }
    }

    private static func write(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(1, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                offset += n
            }
        }
    }
}
