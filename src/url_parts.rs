//! Small, allocation-light URL helpers shared by the transports (query parameters) and
//! enrichment (referrer host, UTM parameters of a landing page).

/// The percent-decoded value of `name` in a query string (`a=1&b=2`).
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

/// The query string of an absolute URL, without the fragment.
pub fn query_of(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    Some(query.split('#').next().unwrap_or(query))
}

/// The lowercase host of an absolute URL, without user info or port.
pub fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The path of an absolute URL (`/` when it has none), or the text itself when it is
/// already a path; without query or fragment.
pub fn path_of(url: &str) -> String {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => url,
    };
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    if path.is_empty() {
        "/".to_owned()
    } else {
        path.to_owned()
    }
}

/// Decodes `%XX` escapes and `+` (a space in query strings); invalid escapes stay as written.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).ok();
                match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        index += 3;
                    }
                    None => {
                        out.push(b'%');
                        index += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        assert_eq!(
            query_param("a=1&token=x%2By%3D", "token").as_deref(),
            Some("x+y=")
        );
        assert_eq!(
            query_param("input=%7B%22a%22%3A1%7D", "input").as_deref(),
            Some(r#"{"a":1}"#)
        );
        assert_eq!(query_param("a=1", "token"), None);
        assert_eq!(query_param("p=100%", "p").as_deref(), Some("100%"));
    }

    #[test]
    fn hosts_and_queries_are_found() {
        assert_eq!(
            host_of("https://User@News.Example.com:8443/a?b").as_deref(),
            Some("news.example.com")
        );
        assert_eq!(
            host_of("http://[2001:db8::1]:80/").as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(host_of("not a url"), None);
        assert_eq!(
            query_of("https://x.io/p?utm_source=a&b=c#frag"),
            Some("utm_source=a&b=c")
        );
        assert_eq!(query_of("https://x.io/p"), None);
    }
}
