import FuzzDriver
import Glibc

// draven's libFuzzer targets, one executable: `draven-fuzz TARGET [libFuzzer flags and corpus dirs]`.
// Built only with -sanitize=fuzzer,address and -DDRAVEN_FUZZ (see Makefile `fuzz`, Tests/Fuzz/README.md).
// Each target feeds the bytes to the code that reads them from the network or disk, and checks
// what must hold of the result: a crash, a sanitizer report or a failed `check` is a finding.
@testable import DravenCore

/// A property of the result that must hold; its failure is a finding (libFuzzer saves the input).
func check(_ condition: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
    if !condition() {
        fputs("draven-fuzz: property failed: \(what())\n", stderr)
        abort()
    }
}

let targets: [String: ([UInt8]) -> Void] = [
    "cgi": FuzzCGI.run,
    "json": FuzzJSON.run,
    "webhook": FuzzWebhook.run,
    "form": FuzzForm.run,
    "signatures": FuzzSignatures.run,
    "config": FuzzConfig.runJSON,
    "toml": FuzzConfig.runTOML,
    "secrets": FuzzSecrets.run,
    "store": FuzzStore.run,
    "redactor": FuzzRedactor.run,
    "events": FuzzEvents.run,
    "plan": FuzzPlan.run,
]

// The target is the first argument, or DRAVEN_FUZZ_TARGET: libFuzzer runs itself again for
// -minimize_crash, -merge and -fork with its own arguments only, and the child inherits the variable.
var arguments = CommandLine.arguments
var name = Environment.get("DRAVEN_FUZZ_TARGET")
if name == nil, arguments.count > 1 {
    name = arguments.remove(at: 1)
    setenv("DRAVEN_FUZZ_TARGET", name!, 1)
}
guard let name, let target = targets[name] else {
    let names = targets.keys.sorted().joined(separator: " ")
    fputs("usage: draven-fuzz TARGET [libFuzzer options] [corpus dirs]\ntargets: \(names)\n", stderr)
    exit(2)
}
nonisolated(unsafe) var selected: ([UInt8]) -> Void = target
var argc = CInt(arguments.count)
var cArguments: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
let status = cArguments.withUnsafeMutableBufferPointer { buffer -> CInt in
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = buffer.baseAddress
    return draven_fuzz_run(&argc, &argv) { data, size in
        selected(size == 0 ? [] : Array(UnsafeBufferPointer(start: data!, count: size)))
        return 0
    }
}
exit(status)
