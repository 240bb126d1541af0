package import DravenCore

/// The `plans` function: deploy plans and their runs. The plan documents' routes are the
/// documents' (`/api/v1/plans`, `/api/v1/plans/{id}`); the runs' are `PlanRunRoutes.routes`.
package enum PlansFunction: RoutedFunction {
    package static let name = "plans"
    package static let maxBodyBytes = 256 * 1024

    package static let router = Router<RouteHandler>(PlanRunRoutes.routes)
}
