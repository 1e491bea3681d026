/// An axis with round ticks: steps of 1, 2 or 5 × 10ⁿ, starting at 0 and reaching at least the largest
/// value, so a reader can read values off the chart (0, 10, 20 … rather than 0, 55, 110 …).
struct ChartAxis: Equatable {
    /// The step between ticks.
    var step: Double
    /// The axis' end: the first tick at or above the largest value.
    var top: Double

    /// At most `maxTicks` intervals between 0 and `top`.
    init(covering largest: Double, maxTicks: Int = 6) {
        let largest = largest.isFinite && largest > 0 ? largest : 1
        let rough = largest / Double(maxTicks)
        var magnitude = 1.0
        while magnitude * 10 <= rough { magnitude *= 10 }
        while magnitude > rough { magnitude /= 10 }
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 * Double(maxTicks) >= largest } ?? magnitude * 10
        self.step = step
        self.top = (largest / step).rounded(.up) * step
    }

    /// 0, step, 2·step … top.
    var ticks: [Double] {
        let count = Int((top / step).rounded())
        return (0...count).map { Double($0) * step }
    }

    /// A tick as a person writes it: no trailing ".0", no float noise (0.30000000000000004).
    static func label(_ value: Double) -> String {
        if value == value.rounded() && abs(value) < 1e15 { return String(Int(value)) }
        let scaled = (value * 1000).rounded() / 1000
        return String(scaled)
    }
}
