//! AdmissionReview records and YAML / Cloud Logging documents.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = loupe_ingest::formats::admission_review_to_audit(text);
        for doc in loupe_ingest::formats::yaml_documents(text).into_iter().flatten() {
            let _ = loupe_audit::decode(&doc);
        }
    }
});
