//! Tag parsing, ordering and update policies (issue 3).
