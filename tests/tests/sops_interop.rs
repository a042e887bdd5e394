//! SOPS interoperability with the real `sops` v3.13.3 (built by `scripts/sops-tool`):
//! files sops encrypts decrypt here byte-identically to `sops -d`; files this project
//! encrypts decrypt with `sops -d`; a file edited without re-encryption fails the MAC in both.

use std::path::{Path, PathBuf};

use renderer::sops::{self, AgeKeys, Rules, SopsError};
use tests::sops::{AgeKey, age_keygen, sops as run_sops, sops_ok};

struct Setup {
    dir: tempfile::TempDir,
    key: AgeKey,
    key_file: PathBuf,
    keys: AgeKeys,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let key = age_keygen().unwrap();
    let key_file = dir.path().join("keys.txt");
    std::fs::write(&key_file, &key.file_text).unwrap();
    let mut keys = AgeKeys::default();
    keys.add(&key.file_text, "keys.txt").unwrap();
    Setup {
        dir,
        key,
        key_file,
        keys,
    }
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `sops -e [extra] NAME` of `plain`, written as `enc.NAME`; returns its bytes.
    fn sops_encrypt(&self, name: &str, plain: &[u8], extra: &[&str]) -> Vec<u8> {
        std::fs::write(self.path(name), plain).unwrap();
        let mut args = vec!["-e", "--age", &self.key.recipient];
        args.extend_from_slice(extra);
        args.push(name);
        let enc = sops_ok(self.dir.path(), None, &args).unwrap();
        std::fs::write(self.path(&format!("enc.{name}")), &enc).unwrap();
        enc
    }

    fn sops_decrypt(&self, name: &str) -> Result<Vec<u8>, String> {
        let out = run_sops(self.dir.path(), Some(&self.key_file), &["-d", name]).unwrap();
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

const YAML: &str = r#"# database credentials
apiVersion: v1
kind: Secret
metadata:
    name: db
    labels:
        tier: backend
type: Opaque
stringData:
    # the admin account
    username: admin
    password: "hunter2: with colon"
    port: 5432
    ratio: 1.5
    enabled: true
    quoted_number: "5432"
    empty: ""
    multi: |
        line one
        line two
    tab: "a\tb"
    hash: "a #b"
    list:
        - x
        - 2
data:
    token: aHVudGVyMg==
"#;

const JSON: &str = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
 "stringData": {"password": "p<a>&ss", "port": 5432, "ratio": 1.25, "on": false, "none": null,
 "nested": {"a": ["x", 1, {"b": "c"}]}, "empty": {}, "list": [], "esc": "q\"uote\\\n"}}"#;

const DOTENV: &str =
    "# app settings\nDB_PASSWORD=hunter2\nAPI_TOKEN=abc=def\nMULTI=one\\ntwo\nEMPTY=\n";

const INI: &str = "; database\n[db]\n# the user\nuser = admin\npassword=hunter2 x\nport = 5432\nnote = a;b\n\n[app]\ntoken = \"quoted value\"\n";

const BINARY: &[u8] =
    b"-----BEGIN CERTIFICATE-----\nMIIB\xc3\xa9\n-----END CERTIFICATE-----\n\tend";

#[test]
fn files_sops_encrypts_decrypt_here_byte_identically() {
    let s = setup();
    let cases: Vec<(&str, &[u8], Vec<&str>)> = vec![
        ("secret.yaml", YAML.as_bytes(), vec![]),
        (
            "regex.yaml",
            YAML.as_bytes(),
            vec!["--encrypted-regex", "^(data|stringData)$"],
        ),
        (
            "suffix.yaml",
            YAML.as_bytes(),
            vec!["--unencrypted-regex", "^(apiVersion|kind|metadata)$"],
        ),
        (
            "maconly.yaml",
            YAML.as_bytes(),
            vec!["--encrypted-regex", "^stringData$", "--mac-only-encrypted"],
        ),
        ("secret.json", JSON.as_bytes(), vec![]),
        (
            "regex.json",
            JSON.as_bytes(),
            vec!["--encrypted-suffix", "Data"],
        ),
        ("app.env", DOTENV.as_bytes(), vec![]),
        ("cert.pem", BINARY, vec![]),
        ("app.ini", INI.as_bytes(), vec![]),
        (
            "regex.ini",
            INI.as_bytes(),
            vec!["--encrypted-regex", "^pass"],
        ),
    ];
    for (name, plain, extra) in cases {
        let enc = s.sops_encrypt(name, plain, &extra);
        let theirs = s.sops_decrypt(&format!("enc.{name}")).unwrap();
        let ours = sops::decrypt(name, &enc, &s.keys)
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .unwrap_or_else(|| panic!("{name}: not recognised as SOPS"));
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{name} ({extra:?}): ours vs sops -d"
        );
        assert_eq!(ours, theirs, "{name}: bytes");
    }
}

/// The plaintext `sops -d` gives back, compared as data (sops re-prints YAML and JSON).
fn same_data(name: &str, original: &[u8], theirs: &[u8]) {
    match sops::Format::from_path(name) {
        sops::Format::Json => {
            let a: serde_json::Value = serde_json::from_slice(original).unwrap();
            let b: serde_json::Value = serde_json::from_slice(theirs).unwrap();
            assert_eq!(a, b, "{name}");
        }
        sops::Format::Yaml => {
            let a =
                renderer::yaml::parse_documents(std::str::from_utf8(original).unwrap()).unwrap();
            let b = renderer::yaml::parse_documents(std::str::from_utf8(theirs).unwrap()).unwrap();
            let values = |d: Vec<renderer::yaml::Document>| -> Vec<serde_json::Value> {
                d.into_iter().map(|d| d.value).collect()
            };
            assert_eq!(values(a), values(b), "{name}");
        }
        sops::Format::Ini => {
            let pairs = |b: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(b)
                    .lines()
                    .filter(|l| l.contains('='))
                    .map(|l| {
                        l.split_once('=')
                            .map(|(k, v)| {
                                format!("{}={}", k.trim(), v.trim().trim_matches(['"', '`']))
                            })
                            .unwrap()
                    })
                    .collect()
            };
            assert_eq!(pairs(original), pairs(theirs), "{name}");
        }
        _ => assert_eq!(original, theirs, "{name}: bytes"),
    }
}

#[test]
fn files_encrypted_here_decrypt_with_sops() {
    let s = setup();
    let regex = Rules {
        encrypted_regex: Some("^(data|stringData)$".into()),
        ..Default::default()
    };
    let mac_only = Rules {
        encrypted_regex: Some("^stringData$".into()),
        mac_only_encrypted: true,
        ..Default::default()
    };
    let default = Rules::default();
    let cases: Vec<(&str, &[u8], &Rules)> = vec![
        ("secret.yaml", YAML.as_bytes(), &default),
        ("regex.yaml", YAML.as_bytes(), &regex),
        ("maconly.yaml", YAML.as_bytes(), &mac_only),
        ("secret.json", JSON.as_bytes(), &default),
        ("app.env", DOTENV.as_bytes(), &default),
        ("cert.pem", BINARY, &default),
        ("app.ini", INI.as_bytes(), &default),
    ];
    for (name, plain, rules) in cases {
        let enc = sops::encrypt(
            name,
            plain,
            std::slice::from_ref(&s.key.recipient),
            rules,
            "2026-01-02T03:04:05Z",
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        std::fs::write(s.path(name), &enc).unwrap();
        let theirs = s.sops_decrypt(name).unwrap_or_else(|e| {
            panic!(
                "{name}: sops -d refused what we wrote: {e}\n{}",
                String::from_utf8_lossy(&enc)
            )
        });
        same_data(name, plain, &theirs);
        // And back through our own reader. sops re-prints YAML with its indent of 4, while our
        // reader keeps the layout of the file (ours writes indent 2): same data there, same
        // bytes for the other formats.
        let ours = sops::decrypt(name, &enc, &s.keys).unwrap().unwrap();
        if matches!(
            sops::Format::from_path(name),
            sops::Format::Yaml | sops::Format::Ini
        ) {
            same_data(name, &ours, &theirs);
        } else {
            assert_eq!(ours, theirs, "{name}: ours vs sops -d of our file");
        }
        if rules.encrypted_regex.is_some() {
            let text = String::from_utf8_lossy(&enc);
            assert!(
                text.contains("name: db"),
                "{name}: metadata stays readable:\n{text}"
            );
            assert!(
                !text.contains("hunter2"),
                "{name}: plaintext leaked:\n{text}"
            );
        }
    }
}

fn assert_refused_both_ways(s: &Setup, name: &str, tampered: &str, what: &str) {
    std::fs::write(s.path(name), tampered).unwrap();
    let theirs = s.sops_decrypt(name);
    assert!(theirs.is_err(), "{what}: sops accepted it");
    let ours = sops::decrypt(name, tampered.as_bytes(), &s.keys).unwrap_err();
    assert_eq!(ours.file(), name, "{what}: {ours}");
    assert!(
        matches!(
            ours,
            SopsError::MacMismatch { .. } | SopsError::Tampered { .. }
        ),
        "{what}: {ours}"
    );
    assert!(!ours.to_string().contains("hunter2"), "{ours}");
}

#[test]
fn edits_without_re_encryption_fail_the_mac_here_and_in_sops() {
    let s = setup();
    // An unencrypted value changed: only the MAC can notice.
    let enc = String::from_utf8(s.sops_encrypt(
        "s.yaml",
        YAML.as_bytes(),
        &["--encrypted-regex", "^(data|stringData)$"],
    ))
    .unwrap();
    let edited = enc.replace("name: db", "name: db2");
    assert_ne!(edited, enc);
    assert_refused_both_ways(&s, "s.yaml", &edited, "plaintext field edited");

    // An encrypted value moved to another key: its additional data no longer matches.
    let lines: Vec<&str> = enc.lines().collect();
    let user = lines
        .iter()
        .position(|l| l.trim_start().starts_with("username:"))
        .unwrap();
    let pass = lines
        .iter()
        .position(|l| l.trim_start().starts_with("password:"))
        .unwrap();
    let value = |i: usize| lines[i].split_once(": ").unwrap().1.to_string();
    let mut swapped: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    swapped[user] = format!("    username: {}", value(pass));
    swapped[pass] = format!("    password: {}", value(user));
    assert_refused_both_ways(&s, "s.yaml", &(swapped.join("\n") + "\n"), "values swapped");

    // A dotenv value replaced by hand.
    let env = String::from_utf8(s.sops_encrypt("a.env", DOTENV.as_bytes(), &[])).unwrap();
    let edited: String = env
        .lines()
        .map(|l| {
            if l.starts_with("DB_PASSWORD=") {
                "DB_PASSWORD=plain".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_refused_both_ways(&s, "a.env", &edited, "dotenv value replaced");
}

#[test]
fn a_wrong_key_names_the_file_and_its_recipients() {
    let s = setup();
    let enc = s.sops_encrypt("s.json", JSON.as_bytes(), &[]);
    let other = age_keygen().unwrap();
    let mut wrong = AgeKeys::default();
    wrong.add(&other.file_text, "other.txt").unwrap();
    let err = sops::decrypt("s.json", &enc, &wrong).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, SopsError::NoKey { .. }), "{text}");
    assert!(text.starts_with("s.json:"), "{text}");
    assert!(text.contains(&s.key.recipient), "{text}");
    assert!(text.contains("other.txt"), "{text}");
    let none = sops::decrypt("s.json", &enc, &AgeKeys::default()).unwrap_err();
    assert!(none.to_string().contains("SOPS_AGE_KEY_FILE"), "{none}");
    assert_eq!(
        sops::recipients("s.json", &enc).unwrap(),
        vec![s.key.recipient.clone()]
    );
}

fn dir_of(s: &Setup) -> &Path {
    s.dir.path()
}

/// The oracle for rendering: `kubectl kustomize` of the tree `sops -d` decrypted equals our
/// render of the encrypted tree.
#[test]
fn encrypted_tree_renders_like_kustomize_of_the_decrypted_tree() {
    let s = setup();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n  port: \"5432\"\n";
    let enc_secret = s.sops_encrypt(
        "secret.yaml",
        secret.as_bytes(),
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    let enc_env = s.sops_encrypt("app.env", DOTENV.as_bytes(), &[]);
    let json_secret = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "api"}, "stringData": {"token": "t0k3n"}}"#;
    let enc_json = s.sops_encrypt(
        "api.json",
        json_secret.as_bytes(),
        &["--encrypted-regex", "^stringData$"],
    );
    let enc_cert = s.sops_encrypt("tls.crt", BINARY, &[]);
    let kustomization = "namespace: shop\nnamePrefix: prod-\nresources:\n- secret.yaml\n- api.json\nsecretGenerator:\n- name: app\n  envs:\n  - app.env\n- name: tls\n  files:\n  - tls.crt\n";
    let plain_dir = dir_of(&s).join("plain");
    let enc_dir = dir_of(&s).join("encrypted");
    for d in [&plain_dir, &enc_dir] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("kustomization.yaml"), kustomization).unwrap();
    }
    std::fs::write(enc_dir.join("secret.yaml"), &enc_secret).unwrap();
    std::fs::write(enc_dir.join("app.env"), &enc_env).unwrap();
    std::fs::write(enc_dir.join("api.json"), &enc_json).unwrap();
    std::fs::write(enc_dir.join("tls.crt"), &enc_cert).unwrap();
    std::fs::write(
        plain_dir.join("api.json"),
        s.sops_decrypt("enc.api.json").unwrap(),
    )
    .unwrap();
    std::fs::write(
        plain_dir.join("tls.crt"),
        s.sops_decrypt("enc.tls.crt").unwrap(),
    )
    .unwrap();
    std::fs::write(
        plain_dir.join("secret.yaml"),
        s.sops_decrypt("enc.secret.yaml").unwrap(),
    )
    .unwrap();
    std::fs::write(
        plain_dir.join("app.env"),
        s.sops_decrypt("enc.app.env").unwrap(),
    )
    .unwrap();

    let kubectl = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(&plain_dir)
        .output()
        .expect("kubectl on PATH");
    assert!(
        kubectl.status.success(),
        "{}",
        String::from_utf8_lossy(&kubectl.stderr)
    );

    let fs = renderer::FsSource::new(&enc_dir).unwrap();
    let source = sops::DecryptingSource::new(&fs, &s.keys, sops::Strictness::Strict);
    let ours = renderer::render(&source, "", &renderer::RenderOptions::default()).unwrap();
    assert_eq!(ours.to_yaml(), String::from_utf8(kubectl.stdout).unwrap());
    let mut decrypted = source.decrypted();
    decrypted.sort();
    assert_eq!(decrypted, ["api.json", "app.env", "secret.yaml", "tls.crt"]);

    // The encrypted file is where the value is: its line, not a line of some decrypted copy.
    let obj = ours
        .objects
        .iter()
        .find(|o| o.value["kind"] == "Secret" && o.value["metadata"]["name"] == "prod-db")
        .unwrap();
    let origin = obj
        .provenance()
        .get("stringData.password")
        .expect("provenance of the value");
    assert_eq!(&*origin.origin.file, "secret.yaml");
    let line = String::from_utf8(enc_secret)
        .unwrap()
        .lines()
        .nth(origin.origin.line as usize - 1)
        .unwrap()
        .to_string();
    assert!(line.trim_start().starts_with("password: ENC["), "{line}");

    // Without the key, the strict source names the file and fails the render.
    let no_keys = AgeKeys::default();
    let strict = sops::DecryptingSource::new(&fs, &no_keys, sops::Strictness::Strict);
    let err = renderer::render(&strict, "", &renderer::RenderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("secret.yaml"), "{err}");
    assert!(err.to_string().contains(&s.key.recipient), "{err}");
}

/// What `backfill` writes (encrypted here, for `.sops.yaml`'s rules) renders decrypted.
#[test]
fn a_file_encrypted_here_renders_decrypted() {
    let s = setup();
    let secret = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: catalog-db\n  labels:\n    app: catalog-api\ntype: Opaque\nstringData:\n  username: catalog\n  password: n3w-Pa55word\n";
    let rules = Rules {
        encrypted_regex: Some("^(data|stringData)$".into()),
        ..Default::default()
    };
    let enc = sops::encrypt(
        "db.enc.yaml",
        secret.as_bytes(),
        std::slice::from_ref(&s.key.recipient),
        &rules,
        "2026-01-02T03:04:05Z",
    )
    .unwrap();
    let dir = dir_of(&s).join("tree");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n- db.enc.yaml\n",
    )
    .unwrap();
    std::fs::write(dir.join("db.enc.yaml"), &enc).unwrap();
    let fs = renderer::FsSource::new(&dir).unwrap();
    let source = sops::DecryptingSource::new(&fs, &s.keys, sops::Strictness::Lenient);
    let ours = renderer::render(&source, "", &renderer::RenderOptions::default()).unwrap();
    assert!(source.failures().is_empty(), "{:?}", source.failures());
    assert_eq!(
        ours.objects[0].value["stringData"]["password"],
        "n3w-Pa55word",
        "{}",
        String::from_utf8_lossy(&enc)
    );
}

/// `kubectl gitops secret edit`: the editor sees plaintext in a private file; the file is
/// written back encrypted for the same recipients and rules, and `sops -d` reads the change.
#[test]
fn secret_edit_re_encrypts_for_the_same_recipients() {
    let s = setup();
    let enc = s.sops_encrypt(
        "db.yaml",
        YAML.as_bytes(),
        &["--encrypted-regex", "^(data|stringData)$"],
    );
    std::fs::write(s.path("db.yaml"), &enc).unwrap();
    let editor = s.path("editor.sh");
    // The editor records the mode of the file it was given, then changes one value.
    std::fs::write(
        &editor,
        format!(
            "#!/bin/sh\nstat -c %a \"$1\" > {}\nsed -i 's/username: admin/username: root/' \"$1\"\n",
            s.path("mode").display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).unwrap();
    let plugin = tests::binaries::workspace_binary("plugin", "kubectl-gitops").unwrap();
    let out = std::process::Command::new(plugin)
        .args(["secret", "edit", "db.yaml"])
        .current_dir(s.dir.path())
        .env("EDITOR", &editor)
        .env_remove("VISUAL")
        .env("SOPS_AGE_KEY_FILE", &s.key_file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(s.path("mode")).unwrap().trim(),
        "600"
    );
    let written = std::fs::read_to_string(s.path("db.yaml")).unwrap();
    assert!(
        !written.contains("hunter2") && !written.contains("root"),
        "{written}"
    );
    assert!(
        written.contains("name: db"),
        "the encrypted_regex rule was kept:\n{written}"
    );
    let theirs = String::from_utf8(s.sops_decrypt("db.yaml").unwrap()).unwrap();
    assert!(theirs.contains("username: root"), "{theirs}");
    assert!(
        theirs.contains("password: 'hunter2: with colon'"),
        "{theirs}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".kubectl-gitops-secret-")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
