import LingerCore

/// The `--report DIR` output: one Markdown file per scenario with its chart beside it.
public enum MarkdownReport {
    /// Files to write: (relative name, contents).
    public static func files(for run: LabRun) -> [(String, String)] {
        var files: [(String, String)] = []
        var text = """
            # \(run.scenario.name): \(run.result.passed ? "PASS" : "FAIL")

            **Claim.** \(run.scenario.claim)

            Run took \((run.durationSeconds * 10).rounded() / 10) s, with real sockets in a private network namespace.

            ## What was measured

            """
        for finding in run.result.findings { text += "- \(finding)\n" }
        text += "\n| variant | measurement | value |\n|---|---|---|\n"
        for variant in run.result.variants {
            for (key, value) in variant.measurements { text += "| \(variant.name) | \(key) | \(value.text()) |\n" }
        }
        if !run.result.series.isEmpty {
            let chart = "\(run.scenario.name).svg"
            files.append((chart, SVGChart(title: "\(run.scenario.name): sockets over time", series: run.result.series).svg))
            text += "\n## Socket states over time\n\n![\(run.scenario.name)](\(chart))\n"
        }
        text += "\nSee docs/LAB.md for the claim's source.\n"
        files.insert(("\(run.scenario.name).md", text), at: 0)
        return files
    }
}
