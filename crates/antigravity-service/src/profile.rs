//! The two Google pools one [`Service`](crate::Service) can stand for.
//!
//! Antigravity and the Gemini CLI (Code Assist for individuals) both speak Cloud Code's
//! `v1internal` API (`streamGenerateContent`, `countTokens`, `loadCodeAssist`, `onboardUser`)
//! with Google accounts, and their quotas are separate. They differ in the installed-app OAuth
//! client, the base URLs, the client metadata and user agent, the envelope around a generate
//! request, the model names and the quota call. Everything else (the pool, refresh, cooldowns,
//! project discovery, translation) is shared.
//!
//! The defaults are those of the clients themselves: Antigravity's, and the Gemini CLI's
//! `packages/core/src/code_assist` (`oauth2.ts` for the client, `server.ts` for the endpoint,
//! `converter.ts` for the envelope, `setup.ts` for the metadata).

use gateway_core::Secret;
use serde_json::{Value, json};

use crate::login::OAuthConfig;

/// Which pool a service serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Profile {
    /// Google's Antigravity: Gemini, Claude and GPT-OSS models.
    #[default]
    Antigravity,
    /// The Gemini CLI's Code Assist for individuals: Gemini models only.
    GeminiCli,
}

/// The Gemini CLI's public installed-app client (`oauth2.ts`: "It's ok to save this in git
/// because this is an installed application").
const GEMINI_CLI_CLIENT_ID: &str =
    "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";
const GEMINI_CLI_CLIENT_SECRET: &str = "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";

/// The models Code Assist serves to Gemini CLI accounts (it has no model list call).
const GEMINI_CLI_MODELS: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
];

impl Profile {
    /// `antigravity` or `geminicli`: the backend kind, and the owner named in model lists.
    pub fn name(self) -> &'static str {
        match self {
            Self::Antigravity => "antigravity",
            Self::GeminiCli => "geminicli",
        }
    }

    /// The upstream base URLs, in order.
    pub fn base_urls(self) -> &'static [&'static str] {
        match self {
            Self::Antigravity => &crate::service::DEFAULT_BASE_URLS,
            Self::GeminiCli => &["https://cloudcode-pa.googleapis.com"],
        }
    }

    /// The `User-Agent` sent upstream.
    pub fn user_agent(self) -> &'static str {
        match self {
            Self::Antigravity => crate::service::DEFAULT_USER_AGENT,
            Self::GeminiCli => "GeminiCLI/0.61.0 (linux; x64)",
        }
    }

    /// Where the account files live by default.
    pub fn credentials_dir(self) -> &'static str {
        match self {
            Self::Antigravity => "data/antigravity",
            Self::GeminiCli => "data/geminicli",
        }
    }

    /// The OAuth client and scopes of a login (Google's URLs are the same for both).
    pub fn oauth(self) -> OAuthConfig {
        let antigravity = OAuthConfig::default();
        match self {
            Self::Antigravity => antigravity,
            Self::GeminiCli => OAuthConfig {
                client_id: GEMINI_CLI_CLIENT_ID.to_owned(),
                client_secret: Secret::new(GEMINI_CLI_CLIENT_SECRET),
                base_url: self.base_urls()[0].to_owned(),
                scopes: [
                    "https://www.googleapis.com/auth/cloud-platform",
                    "https://www.googleapis.com/auth/userinfo.email",
                    "https://www.googleapis.com/auth/userinfo.profile",
                ]
                .into_iter()
                .map(str::to_owned)
                .collect(),
                profile: self,
                ..antigravity
            },
        }
    }

    /// The models a pool without a model list call serves (`None`: ask the upstream).
    pub fn fixed_models(self) -> Option<&'static [&'static str]> {
        match self {
            Self::Antigravity => None,
            Self::GeminiCli => Some(GEMINI_CLI_MODELS),
        }
    }

    /// The client metadata of `loadCodeAssist` and `onboardUser`.
    pub(crate) fn metadata(self) -> Value {
        let ide = match self {
            Self::Antigravity => "ANTIGRAVITY",
            Self::GeminiCli => "IDE_UNSPECIFIED",
        };
        json!({"ideType": ide, "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"})
    }

    /// Whether model names go through Antigravity's alias table (`gemini-3-pro` →
    /// `gemini-3-pro-high`); Code Assist takes the public names as they are.
    pub(crate) fn aliases_models(self) -> bool {
        self == Self::Antigravity
    }
}
