//! No partner ever sees another's data: a reference that belongs to someone
//! else is answered byte for byte like one nobody used.

use rand::seq::SliceRandom as _;
use rand::Rng as _;
use serde_json::json;

use crate::both_engines;
use crate::helpers::{spawn_app, Engine, TestPartner};

both_engines!(another_partners_reference_reads_exactly_like_an_unused_one);

async fn another_partners_reference_reads_exactly_like_an_unused_one(engine: Engine) {
    let app = spawn_app(engine).await;
    let mut partners: Vec<TestPartner> = Vec::new();
    for i in 0..5 {
        partners.push(app.add_partner(i % 2 == 0, &[]).await);
    }
    let mut rng = rand::thread_rng();
    let mut owned: Vec<(usize, String)> = Vec::new();
    for (index, partner) in partners.iter().enumerate() {
        for _ in 0..3 {
            let reference = format!("REF-{}", rng.gen_range(100_000..999_999));
            let dmt = json!({"registration_id": partner.name(), "reference_id": reference, "amount": "500", "account": "123456789012"});
            assert_eq!(app.admin("/admin/v1/dmt", Some(dmt)).await.status, 201);
            let bill = json!({"registration_id": partner.name(), "reference_id": reference, "operator_name": "Tata Power - Mumbai", "ca_number": "900001", "amount": "999"});
            assert_eq!(app.admin("/admin/v1/bbps", Some(bill)).await.status, 201);
            owned.push((index, reference));
        }
    }
    for _ in 0..20 {
        let (owner, reference) = owned.choose(&mut rng).cloned().expect("some transfers were made");
        let asker_index = (owner + rng.gen_range(1..partners.len())) % partners.len();
        let asker = &partners[asker_index];
        let token = |p: &TestPartner| p.token();
        let foreign = app.dmt_status(&asker.name(), &reference, Some(&token(asker))).await;
        let unused = app.dmt_status(&asker.name(), "NEVER-USED-1", Some(&token(asker))).await;
        assert_eq!(
            (foreign.status, &foreign.body, &foreign.content_type),
            (unused.status, &unused.body, &unused.content_type)
        );
        let foreign = app.bill_status(&asker.name(), &reference, Some(&token(asker))).await;
        let unused = app.bill_status(&asker.name(), "NEVER-USED-1", Some(&token(asker))).await;
        assert_eq!(
            (foreign.status, &foreign.body, &foreign.content_type),
            (unused.status, &unused.body, &unused.content_type)
        );
        // And the owner does see it.
        let mine = app.dmt_status(&partners[owner].name(), &reference, Some(&token(&partners[owner]))).await;
        assert_eq!(mine.json()["referenceid"], reference.as_str());
    }
}
