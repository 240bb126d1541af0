import DravenCore
import DravenOutbound

// draven-deliver ID…: makes the outbound calls of the given outbox rows (and of rows they
// lead to). Started by a function after it answered; `draven sweep` retries what is left.
Deliverer.run(ids: CommandLine.arguments.dropFirst().compactMap { Int64($0) })
