//! Reading a repository file with a bound on its size.
//!
//! Owns the one way file mode and the Argo CD Git write-back read a file they may
//! edit: at most [`MAX_FILE_BYTES`], so a huge file committed to a repository (or a
//! device file a link points at) costs a bounded amount of memory and is reported,
//! not read. Must not decide anything about the contents.

use std::io::Read as _;
use std::path::Path;

/// The largest file freshet reads to edit (16 MiB: far above any manifest, values
/// file, Dockerfile or Terraform module).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The bytes of `path`, or an error of kind `FileTooLarge` naming the limit when it
/// holds more than [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("larger than {} MiB; left untouched", MAX_FILE_BYTES >> 20),
        ));
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text (an error of kind `InvalidData` when it is not).
pub fn read_text_bounded(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bounded(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_limit_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.yaml");
        std::fs::write(&small, "image: nginx:1.25\n").unwrap();
        assert_eq!(read_text_bounded(&small).unwrap(), "image: nginx:1.25\n");
        let big = dir.path().join("big.yaml");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_FILE_BYTES + 1).unwrap();
        let e = read_bounded(&big).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("16 MiB"), "{e}");
    }
}
