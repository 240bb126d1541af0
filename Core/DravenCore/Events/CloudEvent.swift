/// An event as a subscriber receives it: a CloudEvents 1.0 document in structured mode
/// (`application/cloudevents+json`). Besides the required attributes it carries `subject`,
/// `time`, `datacontenttype`, the sequence extension (`sequence`: the event's number in the
/// subscriber's stream, zero-padded to 20 digits so a string comparison orders them, as the
/// extension requires) and the distributed tracing extension (`traceparent`) when the job or
/// run has one.
package enum CloudEvent {
    package static let contentType = "application/cloudevents+json"

    /// The document of `event` as the `sequence`-th of its subscriber's stream.
    package static func document(_ event: Events.Event, sequence: Int64) -> [UInt8] {
        var document: JSONObject = [
            "specversion": "1.0", "id": .string(event.eventID), "source": .string(event.source),
            "type": .string(event.type), "subject": .string(event.subject), "time": .string(Clock.rfc3339(event.at)),
            "datacontenttype": "application/json", "sequence": .string(padded(sequence)),
        ]
        if let trace = event.traceparent { document["traceparent"] = .string(trace) }
        document["data"] = (try? JSON.parse(event.data)) ?? .object([:])
        return JSON.object(document).serializedBytes()
    }

    /// `sequence` as 20 decimal digits: every Int64 fits, and string order is number order.
    package static func padded(_ sequence: Int64) -> String {
        let digits = String(sequence)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }
}
