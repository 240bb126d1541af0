internal import Glibc

/// Minimal structured logging to stderr (fcgiwrap forwards it to nginx's error log).
/// Messages are constant; data goes in dotted metadata keys. Never pass a secret.
package enum Log {
    package static func error(_ message: String, _ metadata: [String: String] = [:]) {
        emit("error", message, metadata)
    }
    package static func info(_ message: String, _ metadata: [String: String] = [:]) { emit("info", message, metadata) }

    private static func emit(_ level: String, _ message: String, _ metadata: [String: String]) {
        var line = "draven \(level): \(message)"
        for key in metadata.keys.sorted() { line += " \(key)=\(metadata[key]!)" }
        line += "\n"
        let bytes = Array(line.utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
