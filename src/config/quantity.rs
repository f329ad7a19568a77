//! Kubernetes resource quantities (`500m`, `1Gi`, `1e3`) as numbers, as pod specs and the
//! pricing file write them.

/// A Kubernetes quantity as a number (`500m` → 0.5, `1Gi` → 1073741824, `1e3` → 1000).
pub fn quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    let q = q.trim();
    if q.is_empty() {
        return None;
    }
    for (s, f) in SUFFIXES {
        if let Some(n) = q.strip_suffix(s) {
            return n
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| v * f);
        }
    }
    if let Some(n) = q.strip_suffix('E') {
        return n.parse::<f64>().ok().map(|v| v * 1e18);
    }
    q.parse::<f64>().ok().filter(|v| v.is_finite())
}
