//! A serving deployment as the metadata store keeps it: its spec and its state, both JSON owned
//! by the serving crate (the store only keeps them safe).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub name: String,
    pub spec: String,
    pub state: String,
    pub update_time: i64,
}
