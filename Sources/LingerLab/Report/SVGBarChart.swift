/// A grouped bar chart for the trial-table scenarios: one group per case, one bar per outcome, each bar
/// labelled with its count so the chart reads without the table.
public struct SVGBarChart {
    public var chart: LabBarChart
    public var width = 800.0

    public init(_ chart: LabBarChart) { self.chart = chart }

    static let colors = ["#2ca02c", "#d62728", "#1f77b4", "#ff7f0e", "#9467bd"]

    public var svg: String {
        let left = 60.0, right = 20.0, top = 40.0 + 16 * Double(chart.outcomes.count)
        // Group names are written at 40° below the axis; long ones need room.
        let longest = Double(chart.groups.map(\.name.count).max() ?? 0)
        let bottom = 30.0 + longest * 5.2
        let plotHeight = 220.0, height = top + plotHeight + bottom
        let plotWidth = width - left - right
        let yAxis = ChartAxis(covering: chart.groups.flatMap(\.values).max() ?? 1, maxTicks: 5)
        func y(_ v: Double) -> Double { top + plotHeight - v / yAxis.top * plotHeight }
        let groupWidth = plotWidth / Double(max(chart.groups.count, 1))
        let barWidth = min(28, groupWidth * 0.8 / Double(max(chart.outcomes.count, 1)))
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12" role="img" aria-label="\(escapeXML(chart.title))">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left)" y="22" font-size="15" font-weight="bold">\(escapeXML(chart.title))</text>

            """
        for tick in yAxis.ticks {
            out += "<line x1=\"\(left)\" y1=\"\(fmt(y(tick)))\" x2=\"\(left + plotWidth)\" y2=\"\(fmt(y(tick)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(tick) + 4))\" text-anchor=\"end\">\(ChartAxis.label(tick))</text>\n"
        }
        for (index, group) in chart.groups.enumerated() {
            let center = left + groupWidth * (Double(index) + 0.5)
            let start = center - barWidth * Double(chart.outcomes.count) / 2
            for (o, outcome) in chart.outcomes.enumerated() {
                let value = o < group.values.count ? group.values[o] : 0
                let x = start + barWidth * Double(o)
                let color = Self.colors[o % Self.colors.count]
                out += "<rect class=\"bar\" data-group=\"\(escapeXML(group.name))\" data-outcome=\"\(escapeXML(outcome))\" x=\"\(fmt(x + 1))\" y=\"\(fmt(y(value)))\" "
                    + "width=\"\(fmt(barWidth - 2))\" height=\"\(fmt(top + plotHeight - y(value)))\" fill=\"\(color)\"/>\n"
                out += "<text x=\"\(fmt(x + barWidth / 2))\" y=\"\(fmt(y(value) - 3))\" text-anchor=\"middle\" font-size=\"10\">\(ChartAxis.label(value))</text>\n"
            }
            let labelY = top + plotHeight + 14
            out += "<text x=\"\(fmt(center))\" y=\"\(fmt(labelY))\" text-anchor=\"end\" transform=\"rotate(-40 \(fmt(center)) \(fmt(labelY)))\">\(escapeXML(group.name))</text>\n"
        }
        out += "<line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(left + plotWidth)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<text x=\"14\" y=\"\(fmt(top + plotHeight / 2))\" transform=\"rotate(-90 14 \(fmt(top + plotHeight / 2)))\" text-anchor=\"middle\">\(escapeXML(chart.unit))</text>\n"
        for (o, outcome) in chart.outcomes.enumerated() {
            let legendY = 40 + Double(o) * 16
            out += "<rect x=\"\(fmt(left + 12))\" y=\"\(fmt(legendY - 10))\" width=\"12\" height=\"10\" fill=\"\(Self.colors[o % Self.colors.count])\"/>\n"
            out += "<text x=\"\(fmt(left + 30))\" y=\"\(fmt(legendY - 1))\">\(escapeXML(outcome))</text>\n"
        }
        out += "</svg>\n"
        return out
    }
}
