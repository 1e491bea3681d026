import LingerCore

/// The `--report DIR` output: one Markdown file per scenario with its charts beside it, and `index.html`
/// (see `HTMLReport`) with everything inline.
public enum MarkdownReport {
    /// Files to write: (relative name, contents).
    public static func files(for run: LabRun) -> [(String, String)] {
        var files: [(String, String)] = []
        var text = """
            # \(run.scenario.name): \(run.result.passed ? "PASS" : "FAIL")

            **Claim.** \(run.scenario.claim)

            **Source.** \(run.scenario.source)

            Run took \(seconds(run.durationSeconds)) s, with real sockets in a private network namespace.

            ## What was measured

            """
        for finding in run.result.findings { text += "- \(finding)\n" }
        text += "\n| variant | measurement | value |\n|---|---|---|\n"
        for variant in run.result.variants {
            for (key, value) in variant.measurements { text += "| \(variant.name) | \(key) | \(value.text()) |\n" }
        }
        let charts = LabCharts.charts(for: run)
        if !charts.isEmpty { text += "\n## Charts\n" }
        for chart in charts {
            files.append((chart.file, chart.svg))
            text += "\n![\(chart.title)](\(chart.file))\n"
        }
        files.insert(("\(run.scenario.name).md", text), at: 0)
        return files
    }

    /// `index.md`: the verdict table, linking to each scenario's page (relative links: the directory can move).
    public static func index(for runs: [LabRun]) -> String {
        var index = "# Linger lab report\n\nAlso as one page: [index.html](index.html).\n\n| scenario | verdict | seconds |\n|---|---|---|\n"
        for run in runs {
            index += "| [\(run.scenario.name)](\(run.scenario.name).md) | \(run.result.passed ? "pass" : "fail") | \(seconds(run.durationSeconds)) |\n"
        }
        return index
    }

    static func seconds(_ value: Double) -> String { ChartAxis.label((value * 10).rounded() / 10) }
}

/// The charts a run gets: its sockets over time, and its trial table as bars.
enum LabCharts {
    struct Chart {
        var file: String
        var title: String
        var svg: String
    }

    static func charts(for run: LabRun) -> [Chart] {
        var charts: [Chart] = []
        let name = run.scenario.name
        if !run.result.series.isEmpty {
            let title = "\(name): sockets over time"
            charts.append(Chart(file: "\(name).svg", title: title,
                                svg: SVGChart(title: title, series: run.result.series, duration: run.durationSeconds).svg))
        }
        if let bars = run.result.bars {
            charts.append(Chart(file: "\(name)-trials.svg", title: bars.title, svg: SVGBarChart(bars).svg))
        }
        return charts
    }
}
