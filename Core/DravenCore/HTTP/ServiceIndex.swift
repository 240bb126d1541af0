/// `GET /` for API clients: the service's name and its main links. The `status` function answers it,
/// and so does the `console` function for a client that does not ask for HTML (nginx sends `/` to the
/// console only when `Accept` names `text/html`; infra/nginx/draven.conf.in).
package enum ServiceIndex {
    package static var response: Response {
        Response(
            status: 200,
            json: [
                "service": "draven",
                "links": [
                    "deploys": "/api/v1/deploys", "jobs": "/api/v1/jobs", "locks": "/api/v1/locks",
                    "releases": "/api/v1/releases", "plans": "/api/v1/plans",
                    "metrics": "/metrics",
                ],
            ])
    }
}
