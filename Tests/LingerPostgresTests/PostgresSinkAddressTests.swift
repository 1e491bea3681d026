import LingerPostgres
import Testing

struct PostgresSinkAddressTests {
    @Test func aFullURLSetsEveryPart() throws {
        let address = try PostgresSinkAddress(
            parsing: "postgres://app%40ops:p%3Ass@db.internal:6543/logs?table=app_lines&sslmode=require", environment: [:])
        #expect(address.user == "app@ops")
        #expect(address.password == "p:ss")
        #expect(address.host == "db.internal")
        #expect(address.port == 6543)
        #expect(address.database == "logs")
        #expect(address.table == "app_lines")
        #expect(address.marksTable == "app_lines_marks")
        #expect(address.clientsTable == "app_lines_clients")
        #expect(address.tlsMode == .require)
        #expect(!address.description.contains("p:ss"), "the password must never be printed")
    }

    @Test func whatTheURLLeavesOutComesFromTheEnvironmentThenLibpqDefaults() throws {
        let environment = ["PGHOST": "10.1.1.1", "PGPORT": "5433", "PGUSER": "shipper", "PGPASSWORD": "pw", "PGDATABASE": "events", "PGSSLMODE": "disable"]
        let fromEnvironment = try PostgresSinkAddress(parsing: "postgres://", environment: environment)
        #expect(fromEnvironment.host == "10.1.1.1" && fromEnvironment.port == 5433)
        #expect(fromEnvironment.user == "shipper" && fromEnvironment.password == "pw" && fromEnvironment.database == "events")
        #expect(fromEnvironment.tlsMode == .disable && fromEnvironment.table == "linger_lines")
        let urlWins = try PostgresSinkAddress(parsing: "postgresql://u@h/d", environment: environment)
        #expect(urlWins.user == "u" && urlWins.host == "h" && urlWins.database == "d" && urlWins.port == 5433 && urlWins.password == "pw")
        let defaults = try PostgresSinkAddress(parsing: "postgres://", environment: ["USER": "me"])
        #expect(defaults.host == "localhost" && defaults.port == 5432 && defaults.user == "me" && defaults.database == "me")
        #expect(defaults.tlsMode == .prefer)
    }

    @Test func anIPv6HostKeepsItsBrackets() throws {
        let address = try PostgresSinkAddress(parsing: "postgres://u:p@[::1]:7000/d", environment: [:])
        #expect(address.host == "::1" && address.port == 7000)
        #expect(address.description == "postgres://u@[::1]:7000/d?table=linger_lines")
    }

    @Test(arguments: [
        ("mysql://u@h/d", "not a postgres:// URL"),
        ("postgres://u@h:99999/d", "port must be 1-65535"),
        ("postgres://u@h:x/d", "port must be 1-65535"),
        ("postgres://u@h/d?table=Lines", "table 'Lines'"),
        ("postgres://u@h/d?table=a;drop", "table 'a;drop'"),
        ("postgres://u@h/d?tabel=x", "unknown URL parameter 'tabel'"),
        ("postgres://u@h/d?sslmode=allow", "sslmode must be"),
        ("postgres://u:%zz@h/d", "bad %-escape"),
        ("postgres://u@[::1/d", "closing ']'"),
    ])
    func badURLsSayWhatIsWrong(url: String, expected: String) {
        #expect {
            _ = try PostgresSinkAddress(parsing: url, environment: [:])
        } throws: { error in
            "\(error)".contains(expected)
        }
    }
}
