//! Key pairs: CreateKeyPair (the private key is returned once and never
//! stored), ImportKeyPair, DescribeKeyPairs, DeleteKeyPair.

use base64::Engine;

use super::super::error::Ec2Error;
use super::super::filters;
use super::super::params::shown;
use super::super::{Ctx, all_found, ids};
use crate::db::keypairs::KeyPairRow;
use crate::keys::{self, KeyType};

/// A key name as EC2 takes it: 1–255 printable ASCII characters.
fn key_name(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let name = cx.params.required("KeyName")?;
    if name.len() > 255 || !name.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return Err(Ec2Error::invalid(format!(
            "Invalid key name '{}': up to 255 printable ASCII characters.",
            shown(name)
        )));
    }
    Ok(name.to_owned())
}

async fn check_quota(cx: &Ctx<'_>) -> Result<(), Ec2Error> {
    let have = cx.cloud.db.key_pairs(&cx.caller.project_id).await?.len() as u64;
    if have >= cx.cloud.config.quotas.key_pairs {
        return Err(Ec2Error::client(
            "KeyPairLimitExceeded",
            format!(
                "You have reached the limit of {} key pairs.",
                cx.cloud.config.quotas.key_pairs
            ),
        ));
    }
    Ok(())
}

async fn store(
    cx: &Ctx<'_>,
    name: &str,
    kind: KeyType,
    fingerprint: &str,
    public: &str,
) -> Result<String, Ec2Error> {
    let row = KeyPairRow {
        key_pair_id: ids::new_id("key"),
        project_id: cx.caller.project_id.clone(),
        name: name.to_owned(),
        key_type: kind.as_str().to_owned(),
        fingerprint: fingerprint.to_owned(),
        public_key: public.to_owned(),
        created_at: crate::db::now(),
    };
    match cx.cloud.db.insert_key_pair(&row).await {
        Ok(()) => Ok(row.key_pair_id),
        Err(e) if e.is_unique_violation() => Err(duplicate(name)),
        Err(e) => Err(e.into()),
    }
}

fn duplicate(name: &str) -> Ec2Error {
    Ec2Error::client(
        "InvalidKeyPair.Duplicate",
        format!("The keypair '{}' already exists.", shown(name)),
    )
}

/// CreateKeyPair.
pub async fn create_key_pair(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let name = key_name(cx)?;
    let kind = match cx.params.get("KeyType") {
        None => KeyType::Rsa,
        Some(t) => KeyType::parse(t).ok_or_else(|| {
            Ec2Error::invalid(format!(
                "Invalid KeyType '{}': use rsa or ed25519.",
                shown(t)
            ))
        })?,
    };
    if let Some(format) = cx.params.get("KeyFormat")
        && format != "pem"
    {
        return Err(Ec2Error::client(
            "UnsupportedOperation",
            "Only the pem key format is supported.",
        ));
    }
    may_add(cx, &name).await?;
    let comment = name.clone();
    // RSA generation is CPU work of tens of milliseconds: off the runtime.
    let made = tokio::task::spawn_blocking(move || keys::create(kind, &comment))
        .await
        .map_err(|e| Ec2Error::internal(format!("key generation stopped: {e}")))?
        .map_err(|e| Ec2Error::internal(e.to_string()))?;
    let id = store(cx, &name, kind, &made.fingerprint, &made.public_openssh).await?;
    let mut x = cx.response();
    x.text("keyName", &name)
        .text("keyFingerprint", &made.fingerprint)
        .text("keyMaterial", &made.private_key)
        .text("keyPairId", &id);
    Ok(cx.finish(x))
}

/// Whether a key pair `name` may be added: none of that name, room under
/// the quota, and no dry run.
async fn may_add(cx: &Ctx<'_>, name: &str) -> Result<(), Ec2Error> {
    if cx
        .cloud
        .db
        .key_pair(&cx.caller.project_id, name)
        .await?
        .is_some()
    {
        return Err(duplicate(name));
    }
    check_quota(cx).await?;
    cx.dry_run()
}

/// ImportKeyPair.
pub async fn import_key_pair(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let name = key_name(cx)?;
    let material = cx.params.required("PublicKeyMaterial")?;
    // The SDKs send the key base64-encoded (a blob); older tools send it as is.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(material.trim())
        .unwrap_or_else(|_| material.as_bytes().to_vec());
    let imported = keys::import(&bytes, &name)
        .or_else(|e| keys::import(material.as_bytes(), &name).map_err(|_| e))
        .map_err(|e| Ec2Error::client(e.code(), e.to_string()))?;
    may_add(cx, &name).await?;
    let id = store(
        cx,
        &name,
        imported.key_type,
        &imported.fingerprint,
        &imported.public_openssh,
    )
    .await?;
    let mut x = cx.response();
    x.text("keyFingerprint", &imported.fingerprint)
        .text("keyName", &name)
        .text("keyPairId", &id);
    Ok(cx.finish(x))
}

/// DescribeKeyPairs.
pub async fn describe_key_pairs(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let names = cx.params.list("KeyName")?;
    let key_ids = cx.params.list("KeyPairId")?;
    let with_public = cx.params.flag("IncludePublicKey")?;
    let wanted = filters::parse(
        cx.params,
        &["key-name", "fingerprint", "key-pair-id", "key-type"],
    )?;
    let mut pairs = cx.cloud.db.key_pairs(&cx.caller.project_id).await?;
    let missing = |what: &str| {
        Ec2Error::client(
            "InvalidKeyPair.NotFound",
            format!("The key pair '{}' does not exist", shown(what)),
        )
    };
    all_found(&names, |n| pairs.iter().any(|k| &k.name == n), missing)?;
    all_found(
        &key_ids,
        |id| pairs.iter().any(|k| &k.key_pair_id == id),
        missing,
    )?;
    let tags = cx.cloud.db.tags(&cx.caller.project_id, None).await?;
    let tags_of = |id: &str| super::tags::of(&tags, id);
    pairs.retain(|k| {
        (names.is_empty() && key_ids.is_empty()
            || names.contains(&k.name)
            || key_ids.contains(&k.key_pair_id))
            && filters::matches(&wanted, &tags_of(&k.key_pair_id), |n| match n {
                "key-name" => vec![k.name.clone()],
                "fingerprint" => vec![k.fingerprint.clone()],
                "key-pair-id" => vec![k.key_pair_id.clone()],
                "key-type" => vec![k.key_type.clone()],
                _ => vec![],
            })
    });
    let mut x = cx.response();
    x.list("keySet", &pairs, |x, k| {
        x.text("keyPairId", &k.key_pair_id)
            .text("keyName", &k.name)
            .text("keyFingerprint", &k.fingerprint)
            .text("keyType", &k.key_type);
        let own = tags_of(&k.key_pair_id);
        x.list("tagSet", &own, |x, (key, value)| {
            x.text("key", key).text("value", value);
        });
        if with_public {
            x.text("publicKey", &k.public_key);
        }
        x.text("createTime", &k.created_at);
    });
    Ok(cx.finish(x))
}

/// DeleteKeyPair: succeeds whether or not the key was there, as EC2 does.
pub async fn delete_key_pair(cx: &Ctx<'_>) -> Result<String, Ec2Error> {
    let which = match (cx.params.get("KeyPairId"), cx.params.get("KeyName")) {
        (Some(id), _) if !id.is_empty() => id.to_owned(),
        (_, Some(name)) if !name.is_empty() => name.to_owned(),
        _ => return Err(Ec2Error::missing("KeyName")),
    };
    cx.dry_run()?;
    cx.cloud
        .db
        .delete_key_pair(&cx.caller.project_id, &which)
        .await?;
    Ok(cx.ok())
}
