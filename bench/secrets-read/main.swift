import DravenCore
import Glibc

// Measures the request-path cost of the secrets store: opening the state database, verifying
// and opening a store of 100 entries, and decrypting one secret — as a function does once per
// request. Prints medians and 90th percentiles in microseconds. (`make bench-secrets`)
func micros(_ body: () throws -> Void) rethrows -> Double {
    var a = timespec()
    var b = timespec()
    clock_gettime(CLOCK_MONOTONIC, &a)
    try body()
    clock_gettime(CLOCK_MONOTONIC, &b)
    return Double(b.tv_sec - a.tv_sec) * 1e6 + Double(b.tv_nsec - a.tv_nsec) / 1e3
}

func report(_ label: String, _ samples: [Double]) {
    let s = samples.sorted()
    let median = s[s.count / 2]
    let p90 = s[s.count * 9 / 10]
    print("\(label): median \(Int(median)) µs, p90 \(Int(p90)) µs (\(s.count) runs)")
}

var template = Array("/tmp/draven-bench-XXXXXX".utf8CString)
_ = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
let dir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
defer { _ = system("rm -rf '\(dir)'") }
let paths = Paths(stateDir: dir)
mkdir(paths.secretsDir, 0o750)
let setup = try Database(path: paths.database)
try Migrations.migrate(setup)
let secrets = SecretsPaths(paths)
try SecretsAdmin.initialize(secrets, db: setup, actor: "bench", now: Clock.now())
try SecretsAdmin.update(secrets, db: setup, actor: "bench", now: Clock.now()) { draft in
    for i in 0..<99 {
        let value = Array("tok_\(i)_".utf8) + Sodium.randomBytes(30)
        try draft.set("provider-token-\(i)", kind: .token, value: SecretBytes(copying: value, label: "v"))
    }
    return ((), ["(bench)"])
}
let runs = 2000
var open: [Double] = []
var read: [Double] = []
var both: [Double] = []
for _ in 0..<runs {
    var store: SecretsStore?
    open.append(try micros { store = try SecretsStore(secrets, db: setup) })
    read.append(try micros { _ = try store!.secret("provider-token-50") })
    both.append(
        try micros {
            let db = try Database(path: paths.database, create: false)
            _ = try SecretsStore(secrets, db: db).secret("provider-token-50")
        })
}
print("secrets store with \(try SecretsStore(secrets, db: setup).entries.count) entries")
report("verify + ratchet + unwrap (store open)", open)
report("decrypt one entry", read)
report("open the database + open the store + read one secret", both)
