use stagegrad::differentiable;

trait Foo {
    fn foo(self) -> f64;
}

impl Foo for f64 {
    fn foo(self) -> f64 {
        self * 2.0
    }
}

#[differentiable]
fn uses_foo(x: f64) -> f64 {
    x.foo() + x
}

fn main() {
    let _ = uses_foo(3.0);
}
