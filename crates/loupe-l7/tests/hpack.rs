//! HPACK: the hpack-test-case stories (../shared/corpus/misc, 13 419 header blocks
//! encoded by nghttp2, with table-size changes, and by Go) decode, in order on one
//! decoder per story, to exactly their header lists. SKIPPED without the corpus unless
//! LOUPE_REQUIRE_CORPUS is set.

use std::path::PathBuf;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[test]
fn every_hpack_test_case_decodes_to_its_headers() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/misc/hpack-test-case");
    if !dir.is_dir() {
        assert!(
            std::env::var_os("LOUPE_REQUIRE_CORPUS").is_none(),
            "the corpus is not at {}",
            dir.display()
        );
        eprintln!("SKIPPED: the shared corpus is not at {}", dir.display());
        return;
    }
    let (mut stories, mut blocks) = (0, 0);
    for encoder in ["nghttp2", "nghttp2-change-table-size", "go-hpack"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join(encoder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            let story: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let mut decoder = loupe_l7::h2::HeaderDecoder::default();
            for case in story["cases"].as_array().unwrap() {
                let wire = unhex(case["wire"].as_str().unwrap());
                let got = decoder
                    .decode(&wire)
                    .unwrap_or_else(|e| panic!("{} seq {}: {e}", file.display(), case["seqno"]));
                let want: Vec<(String, String)> = case["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|h| {
                        h.as_object()
                            .unwrap()
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    })
                    .collect();
                assert_eq!(got, want, "{} seq {}", file.display(), case["seqno"]);
                blocks += 1;
            }
            stories += 1;
        }
    }
    println!("{stories} stories, {blocks} header blocks decoded");
    assert!(blocks > 10_000, "{blocks}");
}
