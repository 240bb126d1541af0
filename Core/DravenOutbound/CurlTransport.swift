internal import CCurl
package import DravenCore
internal import Glibc

/// HTTP over libcurl. Linked only into `draven-deliver` and the CLI: libcurl adds ~3.4 ms to
/// every process start, so no per-request function may link it (DESIGN.md).
///
/// Each call: TLS verification on (peer and host), http/https only, no redirects (an auth
/// header must not follow a redirect), connect and total timeouts, responses capped at
/// `maxResponseBytes`, no signals. The credential is copied into the header list or body
/// only for the call and the Swift-side buffers are wiped; URLs never carry secrets.
package struct CurlTransport: HTTPTransport {
    package var maxResponseBytes = 1 << 20
    package var connectTimeoutMS = 5_000

    package init() {
        _ = CurlTransport.globalInit
    }

    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    package func send(_ request: OutboundRequest, credential: SecretBytes?) throws(TransportError) -> OutboundResponse {
        let handle = try EasyHandle()
        var headerLines: [[CChar]] = request.headers.map { Array("\($0.0): \($0.1)".utf8CString) }
        var body = request.body
        var url = Array(request.url.utf8CString)
        var password: [CChar] = []
        defer {
            for i in headerLines.indices { headerLines[i].withUnsafeMutableBytes { wipe($0) } }
            body.withUnsafeMutableBytes { wipe($0) }
            url.withUnsafeMutableBytes { wipe($0) }
            password.withUnsafeMutableBytes { wipe($0) }
        }
        if let credential, let how = request.credential {
            switch how {
            case .header(let name, let prefix):
                var line = Array("\(name): \(prefix)".utf8CString.dropLast())
                credential.withUnsafeBytes { line.append(contentsOf: $0.map { CChar(bitPattern: $0) }) }
                line.append(0)
                headerLines.append(line)
            case .formField:
                body = substitute(body, placeholder: Array(OutboundRequest.bodyPlaceholder.utf8), with: credential)
            case .url:
                url = credential.withUnsafeBytes { $0.map { CChar(bitPattern: $0) } } + [0]
            case .smtpLogin:
                password = credential.withUnsafeBytes { $0.map { CChar(bitPattern: $0) } } + [0]
            }
        }
        if let mail = request.mail {
            return try sendMail(handle, request, mail: mail, password: password)
        }
        // No "Expect: 100-continue" round trip.
        headerLines.append(Array("Expect:".utf8CString))

        var list: UnsafeMutablePointer<curl_slist>?
        for line in headerLines { line.withUnsafeBufferPointer { list = curl_slist_append(list, $0.baseAddress) } }
        defer { curl_slist_free_all(list) }

        let sink = ResponseSink(limit: maxResponseBytes)
        let rc: CURLcode = body.withUnsafeBytes { bodyBytes in
            url.withUnsafeBufferPointer { handle.set(CURLOPT_URL, $0.baseAddress!) }
            handle.set(CURLOPT_CUSTOMREQUEST, request.method)
            if request.method != "GET" {
                handle.set(CURLOPT_POST, 1)
                handle.set(CURLOPT_POSTFIELDSIZE, bodyBytes.count)
                handle.set(
                    CURLOPT_POSTFIELDS,
                    UnsafeMutableRawPointer(mutating: bodyBytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
            }
            handle.set(CURLOPT_HTTPHEADER, UnsafeMutableRawPointer(list))
            handle.set(CURLOPT_PROTOCOLS_STR, "http,https")
            handle.set(CURLOPT_FOLLOWLOCATION, 0)
            handle.set(CURLOPT_SSL_VERIFYPEER, 1)
            handle.set(CURLOPT_SSL_VERIFYHOST, 2)
            handle.set(CURLOPT_NOSIGNAL, 1)
            handle.set(CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMS)
            handle.set(CURLOPT_TIMEOUT_MS, request.timeoutMS)
            handle.set(CURLOPT_USERAGENT, Dispatch.userAgent)
            return sink.attach(to: handle)
        }
        guard rc == CURLE_OK else {
            let timedOut = rc == CURLE_OPERATION_TIMEDOUT
            let what =
                timedOut
                ? "timed out after \(request.timeoutMS / 1000)s"
                : sink.overflowed
                    ? "response larger than \(maxResponseBytes) bytes" : String(cString: curl_easy_strerror(rc))
            // Connection problems and timeouts may be retried; anything else is a local error.
            let retryable =
                timedOut
                || [
                    CURLE_COULDNT_CONNECT, CURLE_COULDNT_RESOLVE_HOST, CURLE_RECV_ERROR, CURLE_SEND_ERROR,
                    CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE,
                ].contains(rc)
            throw TransportError(
                message: "\(request.method) \(request.redactedURL): \(what)", retryable: retryable, timedOut: timedOut)
        }
        var headers: [String: String] = [:]
        for name in request.responseHeaders {
            if let value = ccurl_response_header(handle.raw, name) { headers[name] = String(cString: value) }
        }
        return OutboundResponse(status: handle.status, body: sink.bytes, headers: headers)
    }

    /// Sends `request.body` as an email over SMTP (STARTTLS required when `mail.requireTLS`).
    private func sendMail(
        _ handle: EasyHandle, _ request: OutboundRequest, mail: OutboundRequest.Mail, password: [CChar]
    ) throws(TransportError) -> OutboundResponse {
        var rcpt: UnsafeMutablePointer<curl_slist>?
        for to in mail.to { rcpt = curl_slist_append(rcpt, "<\(to)>") }
        defer { curl_slist_free_all(rcpt) }
        let source = BodySource(request.body)
        handle.set(CURLOPT_URL, request.url)
        handle.set(CURLOPT_MAIL_FROM, "<\(mail.from)>")
        handle.set(CURLOPT_MAIL_RCPT, UnsafeMutableRawPointer(rcpt))
        handle.set(CURLOPT_UPLOAD, 1)
        handle.set(CURLOPT_PROTOCOLS_STR, "smtp,smtps")
        handle.set(CURLOPT_USE_SSL, mail.requireTLS ? Int(CURLUSESSL_ALL.rawValue) : Int(CURLUSESSL_TRY.rawValue))
        handle.set(CURLOPT_SSL_VERIFYPEER, 1)
        handle.set(CURLOPT_SSL_VERIFYHOST, 2)
        handle.set(CURLOPT_NOSIGNAL, 1)
        handle.set(CURLOPT_CONNECTTIMEOUT_MS, connectTimeoutMS)
        handle.set(CURLOPT_TIMEOUT_MS, request.timeoutMS)
        if case .smtpLogin(let username)? = request.credential, !password.isEmpty {
            handle.set(CURLOPT_USERNAME, username)
            password.withUnsafeBufferPointer { handle.set(CURLOPT_PASSWORD, $0.baseAddress!) }
        }
        let rc = source.attach(to: handle)
        guard rc == CURLE_OK else {
            let timedOut = rc == CURLE_OPERATION_TIMEDOUT
            let status = handle.status
            // An SMTP 5xx reply is final; connection problems, timeouts and 4xx replies may be retried.
            if status >= 500 { return OutboundResponse(status: 400, body: Array("SMTP \(status)".utf8)) }
            throw TransportError(
                message: "SMTP \(request.redactedURL): "
                    + (timedOut
                        ? "timed out after \(request.timeoutMS / 1000)s" : String(cString: curl_easy_strerror(rc))),
                retryable: true, timedOut: timedOut)
        }
        return OutboundResponse(status: 200, body: [])
    }

    private func substitute(_ body: [UInt8], placeholder: [UInt8], with secret: SecretBytes) -> [UInt8] {
        guard
            let start = (0...(max(0, body.count - placeholder.count))).first(where: {
                Array(body[$0..<min(body.count, $0 + placeholder.count)]) == placeholder
            }),
            body.count >= placeholder.count
        else { return body }
        var out = Array(body[..<start])
        // Form-encode the secret (tokens are usually unreserved characters already).
        secret.withUnsafeBytes { raw in
            for b in raw {
                switch b {
                case 0x41...0x5a, 0x61...0x7a, 0x30...0x39, 0x2d, 0x2e, 0x5f, 0x7e: out.append(b)
                default: out.append(contentsOf: Array("%\(Hex.encode([b]).uppercased())".utf8))
                }
            }
        }
        out.append(contentsOf: body[(start + placeholder.count)...])
        return out
    }
}

private func wipe(_ buffer: UnsafeMutableRawBufferPointer) {
    if let base = buffer.baseAddress { explicit_bzero(base, buffer.count) }
}

/// Owns a CURL easy handle; `curl_easy_cleanup` in `deinit`.
final class EasyHandle {
    let raw: UnsafeMutableRawPointer

    init() throws(TransportError) {
        guard let h = curl_easy_init() else { throw TransportError(message: "curl_easy_init failed", retryable: true) }
        raw = h
    }

    deinit { curl_easy_cleanup(raw) }

    func set(_ option: CURLoption, _ value: Int) {
        precondition(ccurl_setopt_long(raw, option, value) == CURLE_OK, "curl option \(option)")
    }
    func set(_ option: CURLoption, _ value: String) {
        precondition(ccurl_setopt_string(raw, option, value) == CURLE_OK, "curl option \(option)")
    }
    func set(_ option: CURLoption, _ value: UnsafeMutableRawPointer?) {
        precondition(ccurl_setopt_pointer(raw, option, value) == CURLE_OK)
    }
    func set(_ option: CURLoption, _ value: UnsafePointer<CChar>) {
        precondition(ccurl_setopt_pointer(raw, option, UnsafeMutableRawPointer(mutating: value)) == CURLE_OK)
    }

    var status: Int {
        var code = 0
        _ = ccurl_getinfo_long(raw, CURLINFO_RESPONSE_CODE, &code)
        return code
    }
}

/// Collects the response body up to a limit.
final class ResponseSink {
    var bytes: [UInt8] = []
    let limit: Int
    var overflowed = false

    init(limit: Int) { self.limit = limit }

    func attach(to handle: EasyHandle) -> CURLcode {
        let me = Unmanaged.passUnretained(self).toOpaque()
        handle.set(CURLOPT_WRITEDATA, me)
        _ = ccurl_setopt_write_function(handle.raw) { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            let n = size * count
            guard sink.bytes.count + n <= sink.limit else {
                sink.overflowed = true
                return 0
            }
            if let data { sink.bytes.append(contentsOf: UnsafeRawBufferPointer(start: data, count: n)) }
            return n
        }
        return withExtendedLifetime(self) { curl_easy_perform(handle.raw) }
    }
}

/// Feeds a request body to libcurl's read callback (SMTP uploads).
final class BodySource {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    func attach(to handle: EasyHandle) -> CURLcode {
        handle.set(CURLOPT_READDATA, Unmanaged.passUnretained(self).toOpaque())
        _ = ccurl_setopt_read_function(handle.raw) { buffer, size, count, context in
            let source = Unmanaged<BodySource>.fromOpaque(context!).takeUnretainedValue()
            let n = min(size * count, source.bytes.count - source.offset)
            guard n > 0, let buffer else { return 0 }
            source.bytes.withUnsafeBytes {
                UnsafeMutableRawPointer(buffer).copyMemory(from: $0.baseAddress! + source.offset, byteCount: n)
            }
            source.offset += n
            return n
        }
        return withExtendedLifetime(self) { curl_easy_perform(handle.raw) }
    }
}
