//! The reference's class weights: w_c = 1 / (n_c / Σn + 0.02).

use randla_train::class_weights;

#[test]
fn weights_follow_the_reference_formula() {
    let w = class_weights(&[700, 200, 100, 0]);
    let expect = [
        1.0 / (0.7 + 0.02),
        1.0 / (0.2 + 0.02),
        1.0 / (0.1 + 0.02),
        1.0 / 0.02,
    ];
    for (a, b) in w.iter().zip(expect) {
        assert!((*a as f64 - b).abs() < 1e-5, "{w:?}");
    }
    // Rarer classes weigh more; an absent class gets the cap 50.
    assert!(w[0] < w[1] && w[1] < w[2] && w[2] < w[3]);
    assert_eq!(w[3], 50.0);
}

#[test]
fn weights_of_equal_classes_are_equal() {
    let w = class_weights(&[5, 5, 5, 5]);
    assert!(w.iter().all(|&x| (x - 1.0 / 0.27).abs() < 1e-5));
}
