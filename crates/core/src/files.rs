//! Finding image references in files and editing them byte-minimally (issue 3).
