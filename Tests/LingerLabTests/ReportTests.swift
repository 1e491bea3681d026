import LingerCore
import Testing
@testable import LingerLab

/// The report's charts: round ticks, an axis that covers the whole run, every series and bar drawn, and text
/// escaped so a finding cannot break the page.
struct ReportTests {
    @Test(arguments: [
        (52.0, 10.0, 60.0), (21.0, 5.0, 25.0), (400.0, 100.0, 400.0), (0.8, 0.2, 0.8), (7.0, 2.0, 8.0), (1.0, 0.2, 1.0),
        (164.0, 50.0, 200.0), (0.0, 0.2, 1.0), (28_232.0, 5_000.0, 30_000.0),
    ])
    func ticksAreRoundAndCoverTheLargestValue(largest: Double, step: Double, top: Double) {
        let axis = ChartAxis(covering: largest)
        #expect(axis.step == step && axis.top == top, "\(largest) → step \(axis.step), top \(axis.top)")
        #expect(axis.top >= largest && axis.ticks.count <= 7)
    }

    @Test func tickLabelsAreWrittenAsPeopleWriteThem() {
        #expect(ChartAxis.label(60) == "60")
        #expect(ChartAxis.label(0.1 + 0.2) == "0.3")
        #expect(ChartAxis(covering: 0.8).ticks.map(ChartAxis.label) == ["0", "0.2", "0.4", "0.6", "0.8"])
    }

    struct Fake: LabScenario {
        let name = "fake<&>"
        let summary = "s"
        let claim = "a claim with <b>markup</b> & an ampersand"
        let source = "RFC 0"
        func run(in lab: LabContext, quick: Bool) throws -> LabResult { fatalError("not run") }
    }

    private func run(passed: Bool, duration: Double) -> LabRun {
        LabRun(scenario: Fake(), result: LabResult(
            variants: [LabVariant("naive", [("error", .string("EMFILE")), ("count", .int(3))]), LabVariant("correct", [])],
            passed: passed, findings: ["saw <script>alert(1)</script>"],
            series: [LabSeries(name: "naive", points: [(0, 0), (10, 5)]), LabSeries(name: "correct", points: [(0, 0), (10, 0)])],
            bars: LabBarChart(title: "t", unit: "trials", outcomes: ["delivered", "lost"], groups: [("a", [3, 1]), ("b", [4, 0])])),
            durationSeconds: duration)
    }

    @Test func thePageEscapesTextAndDrawsEverySeriesAndBar() {
        let page = HTMLReport.page(for: [run(passed: false, duration: 52)])
        #expect(!page.contains("<script>") && page.contains("saw &lt;script&gt;"))
        #expect(page.contains("id=\"fake&lt;&amp;&gt;\" data-verdict=\"fail\""))
        #expect(page.contains("<td>EMFILE</td>"), "strings without JSON quotes")
        #expect(occurrences(of: "<polyline class=\"series\"", in: page) == 2)
        #expect(occurrences(of: "<rect class=\"bar\"", in: page) == 4)
        #expect(page.contains("0 of 1 scenarios held their claim"))
    }

    @Test func theTimeAxisCoversTheWholeRunNotOnlyTheSamples() {
        // Samples stop at 10 s of a 52 s run: the last tick is 60, not 10.
        let svg = SVGChart(title: "t", series: run(passed: true, duration: 52).result.series, duration: 52).svg
        #expect(svg.contains(">60</text>") && svg.contains(">50</text>"))
        #expect(!svg.contains(">55</text>"))
    }

    @Test func markdownLinksStayInsideTheReportDirectory() {
        let files = MarkdownReport.files(for: run(passed: true, duration: 5))
        #expect(files.map(\.0) == ["fake<&>.md", "fake<&>.svg", "fake<&>-trials.svg"])
        #expect(!files[0].1.contains("docs/") && files[0].1.contains("**Source.** RFC 0"))
    }
}

private func occurrences(of needle: String, in text: String) -> Int {
    text.split(separator: Substring(needle), omittingEmptySubsequences: false).count - 1
}
