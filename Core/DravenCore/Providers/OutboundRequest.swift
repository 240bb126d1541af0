/// An HTTP call draven makes, described as data so it can be built and tested without libcurl.
/// The credential is not part of `headers` or `body` text: it is placed at send time from a
/// `SecretBytes` (`credential`), so descriptions of a request can be logged safely.
package struct OutboundRequest: Sendable {
    package enum Credential: Sendable {
        /// `<header>: <prefix><secret>` (e.g. `Authorization: Bearer …`, `PRIVATE-TOKEN: …`).
        case header(name: String, prefix: String)
        /// Replaces the placeholder `bodyPlaceholder` in a form body (GitLab trigger tokens).
        case formField
        /// The secret is the whole URL (Slack and Teams incoming webhooks); `url` is only a label.
        case url
        /// SMTP login: the secret is the password.
        case smtpLogin(username: String)
    }

    /// An email to send over SMTP (`url` is smtp:// or smtps://; `body` is the RFC 5322 message).
    package struct Mail: Sendable {
        package var from: String
        package var to: [String]
        package var requireTLS: Bool
    }

    package static let bodyPlaceholder = "@@DRAVEN_SECRET@@"

    package var method: String
    package var url: String
    package var headers: [(String, String)]
    package var body: [UInt8]
    package var credential: Credential?
    /// The secrets-store entry holding the credential.
    package var secretName: String?
    package var timeoutMS: Int
    package var mail: Mail? = nil
    /// Response headers to read back into `OutboundResponse.headers` (by name, case-insensitive):
    /// the CLI reads the log API's `Draven-Log-*`; the deliverer asks for none.
    package var responseHeaders: [String] = []

    package init(
        method: String, url: String, headers: [(String, String)], body: [UInt8], credential: Credential?,
        secretName: String?,
        timeoutMS: Int, mail: Mail? = nil
    ) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.credential = credential
        self.secretName = secretName
        self.timeoutMS = timeoutMS
        self.mail = mail
    }

    /// The URL without its query string, for logs and errors (a label when the URL is the secret).
    package var redactedURL: String { String(url.split(separator: "?", maxSplits: 1).first ?? "") }
}

/// What came back.
package struct OutboundResponse: Sendable {
    package var status: Int
    package var body: [UInt8]
    /// The values of the headers the request named in `responseHeaders` that the answer had, keyed
    /// by the name as the request spelled it.
    package var headers: [String: String]
    package init(status: Int, body: [UInt8], headers: [String: String] = [:]) {
        self.status = status
        self.body = body
        self.headers = headers
    }
}

/// Why a call produced no HTTP answer. `retryable` is true for timeouts and connection
/// failures (the provider may or may not have acted: a retry carries the same job id).
package struct TransportError: Error, Sendable, CustomStringConvertible {
    package var message: String
    package var retryable: Bool
    package var timedOut: Bool
    package init(message: String, retryable: Bool, timedOut: Bool = false) {
        self.message = message
        self.retryable = retryable
        self.timedOut = timedOut
    }
    package var description: String { message }
}

/// Makes HTTP calls (libcurl in `DravenOutbound`; a function never links it).
package protocol HTTPTransport {
    func send(_ request: OutboundRequest, credential: SecretBytes?) throws(TransportError) -> OutboundResponse
}
