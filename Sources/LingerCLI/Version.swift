/// The one place the version lives: `linger --version` prints it, and `scripts/package` names the .deb after
/// what the built binary prints, so the two cannot disagree.
enum LingerVersion {
    static let number = "0.2.0"
}
