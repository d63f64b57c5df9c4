use subtle::ConstantTimeEq;
use switchboard_model::{ExposeSecret, HandshakeError, HandshakeQuery, SecretString};

/// Meta's GET subscription check: `hub.mode=subscribe` and a matching
/// `hub.verify_token` (any of `tokens`, for rotation) yield the challenge to
/// echo verbatim as `text/plain`. The challenge is opaque; it is not parsed.
pub fn answer_handshake(
    query: &HandshakeQuery,
    tokens: &[SecretString],
) -> Result<String, HandshakeError> {
    let mode = query
        .mode
        .as_deref()
        .ok_or(HandshakeError::MissingParameter("hub.mode"))?;
    if mode != "subscribe" {
        return Err(HandshakeError::WrongMode);
    }
    let offered = query
        .verify_token
        .as_deref()
        .ok_or(HandshakeError::MissingParameter("hub.verify_token"))?;
    let challenge = query
        .challenge
        .as_deref()
        .ok_or(HandshakeError::MissingParameter("hub.challenge"))?;
    let matches = tokens.iter().fold(false, |found, token| {
        let equal: bool = token
            .expose_secret()
            .as_bytes()
            .ct_eq(offered.as_bytes())
            .into();
        found | (equal && !token.expose_secret().is_empty())
    });
    if matches {
        Ok(challenge.to_owned())
    } else {
        Err(HandshakeError::TokenMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(mode: &str, token: &str, challenge: &str) -> HandshakeQuery {
        HandshakeQuery {
            mode: Some(mode.into()),
            verify_token: Some(token.into()),
            challenge: Some(challenge.into()),
        }
    }

    #[test]
    fn matching_token_echoes_the_challenge_verbatim() {
        let tokens = [SecretString::from("tok")];
        assert_eq!(
            answer_handshake(&query("subscribe", "tok", "1158201444"), &tokens).as_deref(),
            Ok("1158201444")
        );
        assert_eq!(
            answer_handshake(&query("subscribe", "tok", "a-b_c"), &tokens).as_deref(),
            Ok("a-b_c")
        );
    }

    #[test]
    fn wrong_token_wrong_mode_and_missing_parts_are_refused() {
        let tokens = [SecretString::from("tok")];
        assert_eq!(
            answer_handshake(&query("subscribe", "nope", "1"), &tokens),
            Err(HandshakeError::TokenMismatch)
        );
        assert_eq!(
            answer_handshake(&query("unsubscribe", "tok", "1"), &tokens),
            Err(HandshakeError::WrongMode)
        );
        let missing = HandshakeQuery {
            mode: Some("subscribe".into()),
            verify_token: Some("tok".into()),
            challenge: None,
        };
        assert_eq!(
            answer_handshake(&missing, &tokens),
            Err(HandshakeError::MissingParameter("hub.challenge"))
        );
        assert_eq!(
            answer_handshake(&HandshakeQuery::default(), &tokens),
            Err(HandshakeError::MissingParameter("hub.mode"))
        );
    }

    #[test]
    fn an_empty_configured_token_never_matches() {
        let tokens = [SecretString::from("")];
        assert_eq!(
            answer_handshake(&query("subscribe", "", "1"), &tokens),
            Err(HandshakeError::TokenMismatch)
        );
    }
}
