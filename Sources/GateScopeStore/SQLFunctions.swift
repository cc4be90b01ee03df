import CSQLite
import Foundation

/// SQL aggregates that compute what the stored summaries hold, the same way, so that a named
/// query answered by scanning rows and the same query answered from `unit_summaries`,
/// `unit_pairs` or `unit_spans` give bit-identical results:
///
/// - `gs_mean(x)`: the mean of Float32 gate values from exact sums (`GateSummary.mean`);
/// - `gs_std(x)`: their population standard deviation (`GateSummary.std`);
/// - `gs_corr(a, b)`: Pearson r of two units' h from quantized exact sums (`PairMoments`).
///
/// NULLs are skipped, as `avg` does; a value that is not a Float32 is an error (the functions
/// are for recorded gate values). `NamedQuery` registers them on the connection it prepares on.
enum SQLFunctions {
    /// State of `gs_mean` / `gs_std`.
    final class Moments {
        var n: Int64 = 0
        var sums = ExactSums()
    }

    /// State of `gs_corr`.
    final class Pair {
        var n: Int64 = 0
        var sa: Int128 = 0, sb: Int128 = 0, qa: Int128 = 0, qb: Int128 = 0, sab: Int128 = 0
    }

    static func register(on db: Database) throws {
        let flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC
        for (name, std) in [("gs_mean", false), ("gs_std", true)] {
            let rc = sqlite3_create_function_v2(db.handle, name, 1, flags, std ? UnsafeMutableRawPointer(bitPattern: 1) : nil,
                                                nil, momentsStep, std ? stdFinal : meanFinal, nil)
            guard rc == SQLITE_OK else { throw DatabaseError(code: rc, message: "cannot register \(name)") }
        }
        let rc = sqlite3_create_function_v2(db.handle, "gs_corr", 2, flags, nil, nil, corrStep, corrFinal, nil)
        guard rc == SQLITE_OK else { throw DatabaseError(code: rc, message: "cannot register gs_corr") }
    }

    /// The state object behind an aggregate context, created on first use; nil if SQLite is out of memory.
    static func state<T: AnyObject>(_ ctx: OpaquePointer?, create: () -> T) -> T? {
        guard let raw = sqlite3_aggregate_context(ctx, Int32(MemoryLayout<UnsafeMutableRawPointer?>.size)) else { return nil }
        let slot = raw.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        if slot.pointee == nil { slot.pointee = Unmanaged.passRetained(create()).toOpaque() }
        return Unmanaged<T>.fromOpaque(slot.pointee!).takeUnretainedValue()
    }

    /// Takes the state back at the end (nil when no row was seen).
    static func finalState<T: AnyObject>(_ ctx: OpaquePointer?, as: T.Type) -> T? {
        guard let raw = sqlite3_aggregate_context(ctx, 0) else { return nil }
        let slot = raw.assumingMemoryBound(to: UnsafeMutableRawPointer?.self)
        guard let p = slot.pointee else { return nil }
        slot.pointee = nil
        return Unmanaged<T>.fromOpaque(p).takeRetainedValue()
    }

    /// The Float32 value of argument `k`, nil for NULL; reports an error (and returns nil) otherwise.
    static func float(_ ctx: OpaquePointer?, _ argv: UnsafeMutablePointer<OpaquePointer?>?, _ k: Int, _ name: String, error: inout Bool) -> Float? {
        let v = argv![k]
        if sqlite3_value_type(v) == SQLITE_NULL { return nil }
        let d = sqlite3_value_double(v)
        let f = Float(d)
        guard Double(f) == d else {
            sqlite3_result_error(ctx, "\(name) takes recorded gate values (Float32), got \(d)", -1)
            error = true
            return nil
        }
        return f
    }

    static let momentsStep: @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<OpaquePointer?>?) -> Void = { ctx, _, argv in
        var failed = false
        let name = sqlite3_user_data(ctx) == nil ? "gs_mean" : "gs_std"
        guard let x = float(ctx, argv, 0, name, error: &failed) else { return }
        guard let s = state(ctx, create: { Moments() }) else { sqlite3_result_error_nomem(ctx); return }
        s.n += 1
        s.sums.add(x)
    }

    static let meanFinal: @convention(c) (OpaquePointer?) -> Void = { ctx in
        guard let s = finalState(ctx, as: Moments.self), s.n > 0 else { sqlite3_result_null(ctx); return }
        sqlite3_result_double(ctx, s.sums.moments(n: s.n).mean)
    }

    static let stdFinal: @convention(c) (OpaquePointer?) -> Void = { ctx in
        guard let s = finalState(ctx, as: Moments.self), s.n > 0 else { sqlite3_result_null(ctx); return }
        sqlite3_result_double(ctx, (s.sums.moments(n: s.n).m2 / Double(s.n)).squareRoot())
    }

    static let corrStep: @convention(c) (OpaquePointer?, Int32, UnsafeMutablePointer<OpaquePointer?>?) -> Void = { ctx, _, argv in
        var failed = false
        let a = float(ctx, argv, 0, "gs_corr", error: &failed)
        if failed { return }
        let b = float(ctx, argv, 1, "gs_corr", error: &failed)
        guard let a, let b else { return }
        guard abs(a) <= 4096, abs(b) <= 4096 else {
            sqlite3_result_error(ctx, "gs_corr takes values of magnitude at most 4096, got \(abs(a) > 4096 ? a : b)", -1)
            return
        }
        guard let s = state(ctx, create: { Pair() }) else { sqlite3_result_error_nomem(ctx); return }
        // |q| <= 2^52, so products stay below 2^104; only very long sums of huge values could overflow.
        let qa = Int128(PairMoments.quantized(Double(a))), qb = Int128(PairMoments.quantized(Double(b)))
        s.n += 1
        let (sa, o1) = s.sa.addingReportingOverflow(qa), (sb, o2) = s.sb.addingReportingOverflow(qb)
        let (aa, o3) = s.qa.addingReportingOverflow(qa * qa), (bb, o4) = s.qb.addingReportingOverflow(qb * qb)
        let (ab, o5) = s.sab.addingReportingOverflow(qa * qb)
        s.sa = sa; s.sb = sb; s.qa = aa; s.qb = bb; s.sab = ab
        if o1 || o2 || o3 || o4 || o5 { sqlite3_result_error(ctx, "gs_corr: the sums overflow 128 bits", -1) }
    }

    static let corrFinal: @convention(c) (OpaquePointer?) -> Void = { ctx in
        guard let s = finalState(ctx, as: Pair.self),
              let r = PairMoments.correlation(n: s.n, sumA: s.sa, sumB: s.sb, sumSqA: s.qa, sumSqB: s.qb, sumAB: s.sab) else {
            sqlite3_result_null(ctx)
            return
        }
        sqlite3_result_double(ctx, r)
    }
}
