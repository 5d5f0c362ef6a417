//! Fossil's delta format (www/delta_format.wiki): encode and apply.
