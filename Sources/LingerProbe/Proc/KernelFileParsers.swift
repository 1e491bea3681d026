/// Parsers for the small `/proc` files that hold counters and settings. Pure; tested against captured text.
package enum KernelFileParsers {
    /// `/proc/net/netstat` and `/proc/net/snmp`: pairs of lines, `Prefix: name name ...` then
    /// `Prefix: value value ...`. Keys come out as `Prefix:name` (`TcpExt:ListenOverflows`).
    package static func parseCounterPairs(_ text: String, into counters: inout [String: Int64]) {
        let lines = text.split(separator: "\n")
        var index = 0
        while index + 1 < lines.count {
            let names = lines[index].split(separator: " ")
            let values = lines[index + 1].split(separator: " ")
            guard let prefix = names.first, prefix.hasSuffix(":"), values.first == prefix, names.count == values.count else {
                index += 1
                continue
            }
            let group = prefix.dropLast()
            for (name, value) in zip(names.dropFirst(), values.dropFirst()) {
                if let number = Int64(value) { counters["\(group):\(name)"] = number }
            }
            index += 2
        }
    }

    /// `/proc/PID/limits`: the soft limit of `Max open files`; nil when absent or unlimited.
    package static func parseOpenFileLimit(_ text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let fields = line.split(separator: " ")
            return fields.count > 3 ? Int(fields[3]) : nil
        }
        return nil
    }

    /// `/proc/net/sockstat`: `TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1`; keys come out as `sockstat:tw`.
    package static func parseSockstat(_ text: String, into counters: inout [String: Int64]) {
        for line in text.split(separator: "\n") where line.hasPrefix("TCP:") {
            let fields = line.split(separator: " ").dropFirst()
            var iterator = fields.makeIterator()
            while let name = iterator.next(), let value = iterator.next() {
                if let number = Int64(value) { counters["sockstat:\(name)"] = number }
            }
        }
    }

    /// `ip_local_port_range`: two numbers separated by white space.
    package static func parsePortRange(_ text: String) -> ClosedRange<Int>? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard parts.count == 2, let low = Int(parts[0]), let high = Int(parts[1]), low <= high else { return nil }
        return low...high
    }

    /// How many ports of `range` the `ip_local_reserved_ports` list (`8000-8010,9000`) takes away. Items that
    /// overlap count once (the kernel prints a merged list, but the count must never exceed the range).
    package static func reservedPortCount(_ text: String, within range: ClosedRange<Int>) -> Int {
        var spans: [(Int, Int)] = []
        for item in text.split(whereSeparator: { $0 == "," || $0 == "\n" || $0 == " " }) {
            let bounds = item.split(separator: "-")
            guard let low = bounds.first.flatMap({ Int($0) }) else { continue }
            let high = bounds.count > 1 ? Int(bounds[1]) ?? low : low
            let lower = max(low, range.lowerBound), upper = min(high, range.upperBound)
            if upper >= lower { spans.append((lower, upper)) }
        }
        var count = 0, covered = Int.min
        for (lower, upper) in spans.sorted(by: { $0.0 < $1.0 }) where upper > covered {
            count += upper - max(lower, covered + 1) + 1
            covered = upper
        }
        return count
    }
}
