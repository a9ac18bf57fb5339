//! freshet's file-mode shell: scanning, atomic writes, git commit and push.
#![forbid(unsafe_code)]
