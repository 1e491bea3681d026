import LingerCore

/// `index.html`: one self-contained page (no scripts, no external files, charts inline as SVG) with every
/// scenario's claim, source, verdict, findings, measurements and charts. It opens from a mail attachment or a
/// CI artifact as well as from the directory it was written to.
public enum HTMLReport {
    public static func page(for runs: [LabRun]) -> String {
        let passed = runs.filter(\.result.passed).count
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>Linger lab report</title>
            <style>
            body { font-family: sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
            table { border-collapse: collapse; margin: 1em 0; }
            td, th { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; }
            .verdict { font-weight: bold; padding: 0.1em 0.5em; border-radius: 0.3em; color: white; }
            .verdict.pass { background: #2a7d2a; }
            .verdict.fail { background: #b22222; }
            section.scenario { border-top: 2px solid #ddd; margin-top: 2em; }
            svg { max-width: 100%; height: auto; }
            </style>
            </head>
            <body>
            <h1>Linger lab report</h1>
            <p id="summary">\(passed) of \(runs.count) scenarios held their claim. Every run used real sockets in a private network namespace.</p>
            <table id="verdicts">
            <tr><th>scenario</th><th>verdict</th><th>seconds</th></tr>

            """
        for run in runs {
            let verdict = run.result.passed ? "pass" : "fail"
            html += "<tr><td><a href=\"#\(escapeXML(run.scenario.name))\">\(escapeXML(run.scenario.name))</a></td>"
                + "<td><span class=\"verdict \(verdict)\">\(verdict)</span></td><td>\(MarkdownReport.seconds(run.durationSeconds))</td></tr>\n"
        }
        html += "</table>\n"
        for run in runs { html += section(for: run) }
        html += "</body>\n</html>\n"
        return html
    }

    static func section(for run: LabRun) -> String {
        let name = escapeXML(run.scenario.name)
        let verdict = run.result.passed ? "pass" : "fail"
        var html = """
            <section class="scenario" id="\(name)" data-verdict="\(verdict)">
            <h2>\(name) <span class="verdict \(verdict)">\(verdict)</span></h2>
            <p class="claim"><strong>Claim.</strong> \(escapeXML(run.scenario.claim))</p>
            <p class="source"><strong>Source.</strong> \(escapeXML(run.scenario.source))</p>
            <p>The run took \(MarkdownReport.seconds(run.durationSeconds)) s.</p>
            <h3>What was measured</h3>
            <ul class="findings">

            """
        for finding in run.result.findings { html += "<li>\(escapeXML(finding))</li>\n" }
        html += "</ul>\n<table class=\"measurements\">\n<tr><th>variant</th><th>measurement</th><th>value</th></tr>\n"
        for variant in run.result.variants {
            for (key, value) in variant.measurements {
                html += "<tr><td>\(escapeXML(variant.name))</td><td>\(escapeXML(key))</td><td>\(escapeXML(display(value)))</td></tr>\n"
            }
        }
        html += "</table>\n"
        for chart in LabCharts.charts(for: run) { html += "<figure class=\"chart\">\n\(chart.svg)</figure>\n" }
        html += "</section>\n"
        return html
    }

    /// A measurement as a person reads it: strings without JSON quotes.
    static func display(_ value: JSONValue) -> String {
        if case .string(let text) = value { return text }
        return value.text()
    }
}
