use stagegrad::differentiable;

#[differentiable]
fn f(x: f64, y: f64, z: f64) -> f64 {
    let g = x + y;
    g * z
}

#[differentiable]
fn h(x: f64, y: f64) -> f64 {
    let a = x.sin() * y + 2.0;
    let a = a.exp() + a;
    f(a, x, y) * x.powi(3)
}

#[test]
fn example() {
    let (value, grad) = f_grad(-2.0, 5.0, -4.0);
    assert_eq!(value, -12.0);
    assert_eq!(grad, FGrad { x: -4.0, y: -4.0, z: 3.0 });
    let trace = f_trace(-2.0, 5.0, -4.0);
    assert_eq!(trace.value("g"), Some(3.0));
    println!("{trace}");
    let (v, g) = h_grad(0.3, 0.7);
    println!("{v} {g:?}");
}
