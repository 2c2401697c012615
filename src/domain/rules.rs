//! Field formats that the derive rules of the inputs share (`#[validate(custom(...))]`).

use validator::ValidationError;

/// Accepts a CUID v1 (`c` + at least 8 more lowercase alphanumerics) or a cuid2 (a lowercase
/// letter then lowercase alphanumerics, 2 to 32 characters in all).
pub fn cuid(value: &str) -> Result<(), ValidationError> {
    let well_formed = (2..=32).contains(&value.len())
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if well_formed {
        Ok(())
    } else {
        Err(ValidationError::new("cuid").with_message("Invalid cuid".into()))
    }
}

pub fn uuid(value: &str) -> Result<(), ValidationError> {
    uuid::Uuid::try_parse(value)
        .map(drop)
        .map_err(|_| ValidationError::new("uuid").with_message("Invalid uuid".into()))
}

pub fn url_or_empty(value: &str) -> Result<(), ValidationError> {
    if value.is_empty() || is_absolute_url(value) {
        Ok(())
    } else {
        Err(ValidationError::new("url").with_message("Invalid url".into()))
    }
}

fn is_absolute_url(value: &str) -> bool {
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
        && !rest.starts_with('/')
        && !value.chars().any(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuid_accepts_v1_and_cuid2_and_rejects_the_rest() {
        assert!(cuid("cjld2cjxh0000qzrmn831i7rn").is_ok());
        assert!(cuid("tz4a98xxat96iws9zmbrgj3a").is_ok());
        for bad in [
            "",
            "a",
            "Cjld2cjxh0000qzrmn831i7rn",
            "1abc",
            "abc-def",
            "c😀abc",
        ] {
            assert!(cuid(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_absolute_or_empty() {
        assert!(url_or_empty("").is_ok());
        assert!(url_or_empty("https://example.com/a?b=c").is_ok());
        for bad in [
            "example.com",
            "https://",
            "https:///x",
            "not a url",
            "http://a b",
        ] {
            assert!(url_or_empty(bad).is_err(), "{bad}");
        }
    }
}
