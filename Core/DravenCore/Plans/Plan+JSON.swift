/// The canonical document of a plan: what `GET /api/v1/plans/{id}` answers and `Plans` stores.
/// Every key is written, defaults filled in (`description`, `inputs`, `depends_on`,
/// `on_failure`, `triggers`, a retry's `backoff`/`initial`/`max`, a check's `expect_status`,
/// `every` and `for`, an approval's `approvals` and `approver_groups`), keys in one fixed order,
/// durations in their canonical text (`PlanDuration.format`: `"90s"` becomes `"1m30s"`) and
/// conditions as `PlanExpression.source` writes them; `version` is left out while it is 0 (a
/// document not applied yet, that said none). `Plan.parse(plan.json) == plan`.
extension Plan {
    package var json: JSON { .object(document(version: true)) }

    /// The bytes whose SHA-256 says whether two documents are the same plan: the canonical
    /// document without its version.
    package var digest: String {
        Sodium.sha256Hex(JSON.object(document(version: false)).serializedBytes())
    }

    func document(version withVersion: Bool) -> JSONObject {
        var out: JSONObject = ["id": .string(id)]
        if withVersion && version > 0 { out["version"] = .int(version) }
        out["description"] = .string(description)
        var inputObject = JSONObject()
        for input in inputs {
            var i: JSONObject = ["type": .string(input.type.rawValue)]
            if let p = input.pattern { i["pattern"] = .string(p) }
            if let d = input.defaultValue { i["default"] = .string(d) }
            inputObject[input.name] = .object(i)
        }
        out["inputs"] = .object(inputObject)
        out["steps"] = .array(steps.map { .object($0.json) })
        out["on_failure"] = .string(onFailure.rawValue)
        out["triggers"] = .array(
            triggers.map { t in
                var trigger: JSONObject = ["on": "push", "project": .string(t.project)]
                trigger[t.refKind.rawValue] = .string(t.pattern)
                trigger["input"] = .string(t.input)
                trigger["run_as"] = .string(t.runAs)
                return .object(trigger)
            })
        return out
    }
}

extension Plan.Step {
    var json: JSONObject {
        var out: JSONObject = [
            "id": .string(id), "type": .string(action.type), "depends_on": .array(dependsOn.map(JSON.string)),
        ]
        if let condition { out["condition"] = .string(condition.source) }
        if let timeout { out["timeout"] = .string(PlanDuration.format(timeout)) }
        if let retry {
            out["retry"] = [
                "max_attempts": .int(Int64(retry.maxAttempts)), "backoff": .string(retry.backoff.rawValue),
                "initial": .string(PlanDuration.format(retry.initial)), "max": .string(PlanDuration.format(retry.max)),
                "on": .array(retry.on.map { .string($0.rawValue) }),
            ]
        }
        if let compensate { out["compensate"] = .string(compensate.rawValue) }
        switch action {
        case .deploy(let project, let environment, let ref, let reason):
            out["project"] = .string(project)
            out["environment"] = .string(environment)
            out["ref"] = .string(ref.source)
            if let reason { out["reason"] = .string(reason.source) }
        case .diagnostic(let project, let environment, let ref):
            out["project"] = .string(project)
            out["environment"] = .string(environment)
            if let ref { out["ref"] = .string(ref.source) }
        case .approval(let approvals, let groups):
            out["approvals"] = .int(Int64(approvals))
            out["approver_groups"] = .array(groups.map(JSON.string))
        case .wait(let seconds):
            out["duration"] = .string(PlanDuration.format(seconds))
        case .check(let check):
            out["http"] = ["url_secret": .string(check.urlSecret), "expect_status": .int(Int64(check.expectStatus))]
            out["every"] = .string(PlanDuration.format(check.every))
            out["for"] = .string(PlanDuration.format(check.forSeconds))
        case .notify(let project, let message):
            out["project"] = .string(project)
            out["message"] = .string(message.source)
        }
        return out
    }
}
