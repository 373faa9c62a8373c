//! The staged backpropagation example: f(x, y, z) = (x + y) * z at (-2, 5, -4).
//!
//! Prints the staged decomposition, the symbolic forward and backward steps and the
//! table of values and adjoints, then writes the computation graph as Graphviz DOT and
//! as SVG (no Graphviz needed) to `out/`.

use std::path::Path;

use stagegrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

fn main() -> std::io::Result<()> {
    let (x, y, z) = (-2.0, 5.0, -4.0);
    println!(
        "f(x, y, z) = (x + y) * z at (x, y, z) = ({x}, {y}, {z}); plain call: {}\n",
        f(x, y, z)
    );

    let trace = f_trace(x, y, z);
    println!("{trace}");

    let (value, gradient) = f_grad(x, y, z);
    println!("f_grad: value {value}, gradient {gradient:?}");

    let out = Path::new("out");
    std::fs::create_dir_all(out)?;
    let dot = out.join("staged_backprop.dot");
    let svg = out.join("staged_backprop.svg");
    trace.write_dot(&dot)?;
    trace.write_svg(&svg)?;
    println!("wrote `{}` and `{}`", dot.display(), svg.display());
    Ok(())
}
