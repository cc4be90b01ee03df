/// The GateScope release: stamped into `runs.tool_version` and printed by `gatescope --version`.
public enum GateScopeVersion {
    public static let current = "0.1.0"
}
