//! The trace that `#[differentiable]` generates, rendered as the user sees it.

use stagegrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[test]
fn design_example_symbolic_steps() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    assert_eq!(trace.value("g"), Some(3.0));
    assert_eq!(trace.value("f"), Some(-12.0));
    let forward = trace.forward_steps();
    assert!(forward.contains("g = x + y = 3"), "{forward}");
    assert!(forward.contains("f = g * z = -12"), "{forward}");
    let backward = trace.backward_steps();
    for line in [
        "df/dz = g = 3",
        "df/dg = z = -4",
        "df/dx = dg/dx * df/dg = df/dg = -4",
        "df/dy = dg/dy * df/dg = df/dg = -4",
    ] {
        assert!(backward.contains(line), "missing `{line}` in\n{backward}");
    }
}

#[test]
fn design_example_graph_colours() {
    let trace = f_trace(-2.0, 5.0, -4.0);
    let dot = trace.to_dot();
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("blue"), "{dot}");
    let svg = trace.to_svg();
    assert!(svg.contains("<svg"), "{svg}");
    for name in ["x", "y", "z", "g", "f"] {
        assert!(trace.node(name).is_some(), "no node {name}");
    }
    assert_eq!(trace.adjoint("x"), Some(-4.0));
    assert_eq!(trace.adjoint("z"), Some(3.0));
}
