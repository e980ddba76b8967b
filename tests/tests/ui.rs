//! Compile-time behaviour of `#[api_key]`: forms that must compile, and mistakes that must not,
//! each with its reviewed message in `ui/fail/*.stderr`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
