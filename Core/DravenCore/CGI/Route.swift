/// Matches a request path against a pattern such as `/api/v1/jobs/{id}`.
package struct Route: Sendable {
    package let method: String
    let segments: [Substring]

    package init(_ method: String, _ pattern: String) {
        self.method = method
        self.segments = pattern.split(separator: "/")
    }

    /// The captured parameters if `path` matches, else nil. A trailing slash is ignored.
    package func match(_ path: String) -> [String: String]? {
        let parts = path.split(separator: "/")
        guard parts.count == segments.count else { return nil }
        var params: [String: String] = [:]
        for (pattern, part) in zip(segments, parts) {
            if pattern.first == "{" && pattern.last == "}" {
                params[String(pattern.dropFirst().dropLast())] = String(part)
            } else if pattern != part {
                return nil
            }
        }
        return params
    }
}

/// A small routing table for a function that serves several routes.
package struct Router<Handler: Sendable>: Sendable {
    package var routes: [(Route, Handler)]
    package init(_ routes: [(Route, Handler)]) { self.routes = routes }

    /// The handler and parameters for `request`.
    /// - Throws: `.methodNotAllowed` when the path matches only with another method, `.notFound` otherwise.
    package func resolve(_ request: Request) throws -> (Handler, [String: String]) {
        var allowed: [String] = []
        for (route, handler) in routes {
            guard let params = route.match(request.path) else { continue }
            if route.method == request.method || (route.method == "GET" && request.method == "HEAD") {
                return (handler, params)
            }
            allowed.append(route.method)
        }
        if !allowed.isEmpty { throw DravenError.methodNotAllowed(allowed: allowed) }
        throw DravenError.notFound(what: "no route for \(request.method) \(request.path)")
    }
}

extension [String: String] {
    /// A path parameter that must be a positive integer id.
    /// - Throws: `DravenError.notFound` when it is not one (such a resource cannot exist).
    package func id(_ name: String) throws -> Int64 {
        guard let raw = self[name], let value = Int64(raw), value > 0 else {
            throw DravenError.notFound(what: "no \(name) \(self[name] ?? "")")
        }
        return value
    }
}

/// What a route's handler gets: the request, the path's parameters, the context.
package typealias RouteHandler = @Sendable (Request, [String: String], Context) throws -> Response

/// A function that serves several routes, each with its own handler: `respond` resolves the
/// route (404, or 405 with `Allow`) and calls its handler.
package protocol RoutedFunction: Function {
    static var router: Router<RouteHandler> { get }
}

extension RoutedFunction {
    package static func respond(to request: Request, context: Context) throws -> Response {
        let (handler, params) = try router.resolve(request)
        return try handler(request, params, context)
    }
}
