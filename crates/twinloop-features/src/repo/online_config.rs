//! `twinloop.yaml`'s `online_store` as written, and its resolution into [`OnlineStoreConfig`].
//!
//! Redis takes our `url` or Feast's settings, so that a Feast `feature_store.yaml`'s block can
//! be copied: `redis_type` (`redis` or `redis_cluster`) and `connection_string`
//! (`"host1:port1,host2:port2,password=…"`).

use serde::Deserialize;

use super::OnlineStoreConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub(super) enum OnlineStoreText {
    Embedded {
        path: Option<String>,
    },
    Redis {
        url: Option<String>,
        #[serde(default)]
        redis_type: RedisType,
        connection_string: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum RedisType {
    #[default]
    Redis,
    RedisCluster,
}

impl OnlineStoreText {
    /// The configuration, or why it is refused (the caller adds the file and line).
    pub(super) fn resolve(self) -> Result<OnlineStoreConfig, String> {
        let (url, redis_type, connection_string) = match self {
            OnlineStoreText::Embedded { path } => return Ok(OnlineStoreConfig::Embedded { path }),
            OnlineStoreText::Redis {
                url,
                redis_type,
                connection_string,
            } => (url, redis_type, connection_string),
        };
        let cluster = redis_type == RedisType::RedisCluster;
        match (url, connection_string) {
            (Some(_), Some(_)) => Err("give either url or connection_string, not both".into()),
            (None, None) if cluster => Err(
                "redis_type: redis_cluster needs connection_string: \"host1:port1,host2:port2\""
                    .into(),
            ),
            (None, None) => Err("redis needs url: \"redis://host:port/0\" or \
                 connection_string: \"host:port\""
                .into()),
            (Some(_), None) if cluster => Err(
                "redis_type: redis_cluster takes connection_string: \"host1:port1,host2:port2\", \
                 not url"
                    .into(),
            ),
            (Some(url), None) => Ok(OnlineStoreConfig::Redis { url }),
            (None, Some(text)) => {
                let mut nodes = node_urls(&text, cluster)?;
                if cluster {
                    Ok(OnlineStoreConfig::RedisCluster { nodes })
                } else if nodes.len() == 1 {
                    Ok(OnlineStoreConfig::Redis {
                        url: nodes.remove(0),
                    })
                } else {
                    Err(format!(
                        "connection_string names {} hosts: a single Redis takes one \
                         (for a cluster, add redis_type: redis_cluster)",
                        nodes.len()
                    ))
                }
            }
        }
    }
}

/// Feast's connection string: `host:port` items, then `key=value` options, as `redis://` URLs
/// that each carry the options.
fn node_urls(text: &str, cluster: bool) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    let (mut username, mut password, mut db) = (None, None, None);
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = part.split_once('=') else {
            hosts.push(part);
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "username" => username = Some(value),
            "password" => password = Some(value),
            "db" if !cluster => {
                let n: u32 = value
                    .parse()
                    .map_err(|_| format!("connection_string: db={value} is not a number"))?;
                db = Some(n);
            }
            "ssl" if value.eq_ignore_ascii_case("false") => {}
            "ssl" => {
                return Err(
                    "connection_string: ssl is not supported yet (reach Redis through a TLS \
                     tunnel such as stunnel)"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "connection_string: unknown option {other:?} (known: username, password{})",
                    if cluster { "" } else { ", db" }
                ));
            }
        }
    }
    if hosts.is_empty() {
        return Err("connection_string names no host:port".into());
    }
    hosts
        .into_iter()
        .map(|host| {
            let bad = || format!("connection_string: {host:?} is not host:port");
            let mut url = url::Url::parse(&format!("redis://{host}")).map_err(|_| bad())?;
            if url.port().is_none()
                || url.host_str().is_none_or(str::is_empty)
                || !url.username().is_empty()
                || !matches!(url.path(), "" | "/")
                || url.query().is_some()
                || url.fragment().is_some()
            {
                return Err(bad());
            }
            if let Some(u) = username {
                url.set_username(u).map_err(|()| bad())?;
            }
            if let Some(p) = password {
                url.set_password(Some(p)).map_err(|()| bad())?;
            }
            url.set_path(&format!("/{}", db.unwrap_or(0)));
            Ok(url.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(yaml: &str) -> Result<OnlineStoreConfig, String> {
        serde_norway::from_str::<OnlineStoreText>(yaml)
            .map_err(|e| e.to_string())?
            .resolve()
    }

    #[test]
    fn feasts_redis_settings_resolve_to_urls() {
        assert_eq!(
            resolve("{type: redis, url: \"redis://h:1/2\"}"),
            Ok(OnlineStoreConfig::Redis {
                url: "redis://h:1/2".into()
            })
        );
        assert_eq!(
            resolve("{type: redis, connection_string: \"h:6379,db=3\"}"),
            Ok(OnlineStoreConfig::Redis {
                url: "redis://h:6379/3".into()
            })
        );
        assert_eq!(
            resolve(
                "{type: redis, redis_type: redis_cluster, \
                 connection_string: \"10.0.0.1:7000, node-b:7001,password=p@ss:w,ssl=false\"}"
            ),
            Ok(OnlineStoreConfig::RedisCluster {
                nodes: vec![
                    "redis://:p%40ss%3Aw@10.0.0.1:7000/0".into(),
                    "redis://:p%40ss%3Aw@node-b:7001/0".into(),
                ]
            })
        );
    }

    #[test]
    fn unusable_redis_settings_say_what_to_write() {
        for (yaml, needle) in [
            ("{type: redis}", "needs url"),
            (
                "{type: redis, redis_type: redis_cluster}",
                "needs connection_string",
            ),
            (
                "{type: redis, redis_type: redis_cluster, url: \"redis://h:1\"}",
                "not url",
            ),
            (
                "{type: redis, url: \"redis://h:1\", connection_string: \"h:1\"}",
                "not both",
            ),
            (
                "{type: redis, connection_string: \"a:1,b:2\"}",
                "add redis_type: redis_cluster",
            ),
            (
                "{type: redis, redis_type: redis_cluster, connection_string: \"a:1,db=2\"}",
                "unknown option \"db\"",
            ),
            ("{type: redis, connection_string: \"a:1,ssl=true\"}", "ssl"),
            (
                "{type: redis, connection_string: \"a\"}",
                "\"a\" is not host:port",
            ),
            (
                "{type: redis, connection_string: \"u@a:1\"}",
                "not host:port",
            ),
            (
                "{type: redis, connection_string: \"password=x\"}",
                "no host",
            ),
            (
                "{type: redis, redis_type: sentinel, url: x}",
                "unknown variant",
            ),
        ] {
            let err = resolve(yaml).unwrap_err();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
    }
}
