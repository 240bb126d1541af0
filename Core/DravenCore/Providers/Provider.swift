/// The CI providers draven integrates with, as `integrations.provider` stores them (the raw
/// values are the strings of the configuration and of the schema's CHECK constraint). Owns the
/// names only; what each provider does is its `CIProvider` (`ci`), one file each.
package enum Provider: String, CaseIterable, Sendable, CustomStringConvertible {
    case github
    case gitlab
    case bitbucketCloud = "bitbucket"
    case bitbucketDataCenter = "bitbucket-dc"

    /// The provider's implementation: its webhooks, events, pushes and API calls.
    package var ci: any CIProvider {
        switch self {
        case .github: GitHub()
        case .gitlab: GitLab()
        case .bitbucketCloud: BitbucketCloud()
        case .bitbucketDataCenter: BitbucketDataCenter()
        }
    }

    /// The stored name, as messages, actors and delivery sources have always spelled it.
    package var description: String { rawValue }
}
