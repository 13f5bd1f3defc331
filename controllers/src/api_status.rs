//! Reading the HTTP status an API call failed with.

/// Whether `result` succeeded or failed with one of `codes` (say, 404 for a delete of
/// something already gone); any other error is handed back.
pub fn ok_or_code<T>(result: Result<T, kube::Error>, codes: &[u16]) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if codes.contains(&status.code) => Ok(()),
        Err(err) => Err(err),
    }
}

pub fn has_code(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}
