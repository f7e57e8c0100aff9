//! The AuthStore behaviour (users, grants, tokens), run against every backend.

use twinloop_core::ErrorKind;
use twinloop_core::auth::{Grant, Permission, ResourceType, TokenScope};
use twinloop_meta::{AuthStore, SqlStore};

fn grant(user: &str, id: &str, permission: Permission) -> Grant {
    Grant {
        username: user.into(),
        resource_type: ResourceType::Experiment,
        resource_id: id.into(),
        permission,
    }
}

on_every_backend!(
    users_are_created_found_updated_and_deleted,
    |s: &SqlStore| {
        assert!(!s.has_admin().await.unwrap());
        let admin = s.create_user("admin", "$argon2id$h1", true).await.unwrap();
        let alice = s.create_user("alice", "$argon2id$h2", false).await.unwrap();
        assert!(admin.is_admin && !alice.is_admin && alice.id > admin.id);
        assert!(s.has_admin().await.unwrap());
        let taken = s.create_user("alice", "x", false).await.unwrap_err();
        assert_eq!(taken.kind, ErrorKind::AlreadyExists);
        assert_eq!(taken.message, "User (username=alice) already exists.");
        assert_eq!(
            s.create_user("", "x", false).await.unwrap_err().kind,
            ErrorKind::InvalidArgument
        );
        let missing = s.user("bob").await.unwrap_err();
        assert_eq!(
            (missing.kind, missing.message.as_str()),
            (ErrorKind::NotFound, "User with username=bob not found")
        );
        assert!(s.user_credentials("bob").await.unwrap().is_none());

        s.update_password("alice", "$argon2id$h3").await.unwrap();
        s.update_admin("alice", true).await.unwrap();
        let creds = s.user_credentials("alice").await.unwrap().unwrap();
        assert_eq!(creds.password_hash, "$argon2id$h3");
        assert!(creds.user.is_admin);
        assert_eq!(
            s.update_admin("bob", true).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        let names: Vec<String> = s
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(names, ["admin", "alice"]);

        s.put_grant(&grant("alice", "1", Permission::Edit))
            .await
            .unwrap();
        s.create_token("alice", "digest-a", TokenScope::Read, "ci")
            .await
            .unwrap();
        s.delete_user("alice").await.unwrap();
        assert_eq!(
            s.delete_user("alice").await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert!(s.token_by_digest("digest-a").await.unwrap().is_none());
        // A new user of the same name inherits nothing, and gets a new id.
        let again = s.create_user("alice", "$argon2id$h4", false).await.unwrap();
        assert!(again.id > alice.id);
        assert!(s.user_grants("alice").await.unwrap().is_empty());
    }
);

on_every_backend!(
    grants_are_set_replaced_renamed_and_removed,
    |s: &SqlStore| {
        s.create_user("alice", "h", false).await.unwrap();
        s.create_user("bob", "h", false).await.unwrap();
        s.put_grant(&grant("alice", "1", Permission::Read))
            .await
            .unwrap();
        s.put_grant(&grant("alice", "1", Permission::Manage))
            .await
            .unwrap();
        s.put_grant(&grant("bob", "1", Permission::Edit))
            .await
            .unwrap();
        let model = Grant {
            resource_type: ResourceType::RegisteredModel,
            resource_id: "m".into(),
            ..grant("alice", "", Permission::Use)
        };
        s.put_grant(&model).await.unwrap();
        assert_eq!(
            s.grant("alice", ResourceType::Experiment, "1")
                .await
                .unwrap(),
            Some(Permission::Manage)
        );
        assert_eq!(
            s.grant("alice", ResourceType::Experiment, "2")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.grant("nobody", ResourceType::Experiment, "1")
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            s.put_grant(&grant("nobody", "1", Permission::Read))
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.user_grants("alice").await.unwrap(),
            vec![grant("alice", "1", Permission::Manage), model.clone()]
        );

        s.rename_resource_grants(ResourceType::RegisteredModel, "m", "n")
            .await
            .unwrap();
        assert_eq!(
            s.grant("alice", ResourceType::RegisteredModel, "n")
                .await
                .unwrap(),
            Some(Permission::Use)
        );
        assert!(
            s.delete_grant("alice", ResourceType::RegisteredModel, "n")
                .await
                .unwrap()
        );
        assert!(
            !s.delete_grant("alice", ResourceType::RegisteredModel, "n")
                .await
                .unwrap()
        );
        s.delete_resource_grants(ResourceType::Experiment, "1")
            .await
            .unwrap();
        assert!(s.user_grants("alice").await.unwrap().is_empty());
        assert!(s.user_grants("bob").await.unwrap().is_empty());
    }
);

on_every_backend!(
    tokens_are_found_by_digest_listed_and_revoked,
    |s: &SqlStore| {
        s.create_user("alice", "h", false).await.unwrap();
        s.create_user("svc", "h", false).await.unwrap();
        let a = s
            .create_token("alice", "d1", TokenScope::Write, "laptop")
            .await
            .unwrap();
        let b = s
            .create_token("svc", "d2", TokenScope::Infer, "")
            .await
            .unwrap();
        assert!(b.id > a.id);
        let (found, user) = s.token_by_digest("d1").await.unwrap().unwrap();
        assert_eq!(found, a);
        assert_eq!(user.username, "alice");
        assert!(s.token_by_digest("d3").await.unwrap().is_none());
        assert_eq!(
            s.list_tokens(None).await.unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(s.list_tokens(Some("svc")).await.unwrap(), vec![b.clone()]);
        // The same digest twice would make a token ambiguous.
        assert_eq!(
            s.create_token("svc", "d1", TokenScope::Read, "")
                .await
                .unwrap_err()
                .kind,
            ErrorKind::AlreadyExists
        );
        s.revoke_token(a.id).await.unwrap();
        assert_eq!(
            s.revoke_token(a.id).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert!(s.token_by_digest("d1").await.unwrap().is_none());
        assert_eq!(
            s.create_token("nobody", "d4", TokenScope::Read, "")
                .await
                .unwrap_err()
                .kind,
            ErrorKind::NotFound
        );
    }
);

on_every_backend!(
    roles_hold_grants_that_apply_to_their_members,
    |s: &SqlStore| {
        use twinloop_core::auth::{AppliedGrant, resolve};
        s.create_user("alice", "h", false).await.unwrap();
        let readers = s
            .create_role("readers", "default", Some("read all"))
            .await
            .unwrap();
        assert_eq!(
            (readers.name.as_str(), readers.workspace.as_str()),
            ("readers", "default")
        );
        assert_eq!(readers.description.as_deref(), Some("read all"));
        let taken = s.create_role("readers", "default", None).await.unwrap_err();
        assert_eq!(taken.kind, ErrorKind::AlreadyExists);
        let elsewhere = s.create_role("readers", "other", None).await.unwrap();
        assert_eq!(
            s.create_role("__user_1__", "default", None)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::InvalidArgument
        );

        let all = s
            .add_role_permission(readers.id, "experiment", "*", Permission::Read)
            .await
            .unwrap();
        let deny = s
            .add_role_permission(readers.id, "experiment", "7", Permission::Deny)
            .await
            .unwrap();
        assert_eq!(
            s.add_role_permission(readers.id, "experiment", "*", Permission::Edit)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::AlreadyExists
        );
        s.add_role_permission(elsewhere.id, "experiment", "*", Permission::Manage)
            .await
            .unwrap();
        let role = s.role(readers.id).await.unwrap();
        assert_eq!(role.permissions, vec![all.clone(), deny.clone()]);

        let applied = |id: &'static str| async move {
            s.applied_grants("alice", ResourceType::Experiment, id)
                .await
                .unwrap()
        };
        assert!(applied("1").await.is_empty(), "not a member yet");
        let assignment = s.assign_role("alice", readers.id).await.unwrap();
        assert_eq!(assignment.role_id, readers.id);
        assert_eq!(
            s.assign_role("alice", readers.id).await.unwrap_err().kind,
            ErrorKind::AlreadyExists
        );
        s.assign_role("alice", elsewhere.id).await.unwrap();
        // The role of another workspace grants nothing: every resource is in `default`.
        assert_eq!(
            resolve(&applied("1").await, Permission::NoPermissions),
            Permission::Read
        );
        s.put_grant(&grant("alice", "7", Permission::Manage))
            .await
            .unwrap();
        assert_eq!(
            resolve(&applied("7").await, Permission::Read),
            Permission::Deny
        );
        s.put_grant(&grant("alice", "1", Permission::Edit))
            .await
            .unwrap();
        assert_eq!(
            resolve(&applied("1").await, Permission::Read),
            Permission::Edit
        );
        assert!(
            s.applied_grants("alice", ResourceType::RegisteredModel, "1")
                .await
                .unwrap()
                .is_empty()
        );

        let admins = s.create_role("admins", "default", None).await.unwrap();
        s.add_role_permission(admins.id, "workspace", "*", Permission::Manage)
            .await
            .unwrap();
        s.assign_role("alice", admins.id).await.unwrap();
        assert!(applied("7").await.contains(&AppliedGrant {
            workspace_admin: true,
            permission: Permission::Manage
        }));
        assert_eq!(
            resolve(&applied("7").await, Permission::Read),
            Permission::Manage
        );
        s.unassign_role("alice", admins.id).await.unwrap();
        assert_eq!(
            s.unassign_role("alice", admins.id).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        let updated = s
            .update_role_permission(deny.id, Permission::Read)
            .await
            .unwrap();
        assert_eq!(updated.permission, Permission::Read);
        assert_eq!(
            resolve(&applied("7").await, Permission::Read),
            Permission::Manage
        );
        s.remove_role_permission(all.id).await.unwrap();
        assert_eq!(
            s.role_permission(all.id).await.unwrap_err().kind,
            ErrorKind::NotFound
        );

        let renamed = s
            .update_role(readers.id, Some("viewers"), Some("d2"))
            .await
            .unwrap();
        assert_eq!(renamed.name, "viewers");
        assert_eq!(renamed.description.as_deref(), Some("d2"));
        assert_eq!(
            s.update_role(readers.id, Some("admins"), None)
                .await
                .unwrap_err()
                .kind,
            ErrorKind::AlreadyExists
        );
        let names = |roles: Vec<twinloop_core::auth::Role>| {
            roles.into_iter().map(|r| r.name).collect::<Vec<_>>()
        };
        assert_eq!(
            names(s.list_roles(None).await.unwrap()),
            ["viewers", "readers", "admins"]
        );
        assert_eq!(
            names(s.list_roles(Some(&["other".to_owned()])).await.unwrap()),
            ["readers"]
        );
        assert_eq!(
            names(s.user_roles("alice").await.unwrap()),
            ["viewers", "readers"]
        );
        assert_eq!(s.role_users(readers.id).await.unwrap().len(), 1);

        s.delete_role(readers.id).await.unwrap();
        assert_eq!(
            s.role(readers.id).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            s.delete_role(readers.id).await.unwrap_err().kind,
            ErrorKind::NotFound
        );
        assert_eq!(names(s.user_roles("alice").await.unwrap()), ["readers"]);
        let again = s.create_role("viewers", "default", None).await.unwrap();
        assert!(again.id > admins.id, "role ids are never reused");
        s.delete_user("alice").await.unwrap();
        assert!(s.role_users(elsewhere.id).await.unwrap().is_empty());
    }
);
