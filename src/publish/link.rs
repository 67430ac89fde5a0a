//! The MQTT connection, version 3.1.1 or 5, behind one small interface: the
//! rest of the publisher does not care which protocol rumqttc speaks.

use rumqttc::v5::mqttbytes::v5 as m5;
use rumqttc::{Outgoing, v5};

use super::settings::{MqttSettings, Protocol};

/// Requests rumqttc may hold while the connection is busy or down.
const REQUEST_CAPACITY: usize = 4096;
/// Mosquitto's default `max_packet_size` is 256 MiB; ours only needs to
/// exceed any detections payload.
const MAX_PACKET: usize = 16 * 1024 * 1024;

/// Incoming payloads larger than this are dropped unread: commands are a
/// few bytes and discovery configs kilobytes; a hostile broker's megabytes
/// must not be copied around.
pub const MAX_INCOMING: usize = 1 << 20;

/// What the connection did, in the terms the publisher needs.
#[derive(Debug, PartialEq)]
pub enum Ev {
    Connected,
    /// The broker confirmed a subscription.
    Subscribed,
    /// A message on a topic we subscribed to.
    Message {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// A QoS 1 publish was written with this packet id (0 for QoS 0).
    Sent(u16),
    /// The broker acknowledged this packet id.
    Acked(u16),
    /// Our DISCONNECT went out.
    Disconnected,
    /// The connection failed or was refused; rumqttc reconnects on the next poll.
    Failed(String),
    Other,
}

pub enum Client {
    V4(rumqttc::Client),
    V5 {
        client: v5::Client,
        /// Message expiry of non-retained messages, seconds.
        expiry: Option<u32>,
    },
}

pub enum Connection {
    V4(Box<rumqttc::Connection>),
    V5(Box<v5::Connection>),
}

fn qos(q: u8) -> (rumqttc::QoS, v5::mqttbytes::QoS) {
    if q == 0 {
        (rumqttc::QoS::AtMostOnce, v5::mqttbytes::QoS::AtMostOnce)
    } else {
        (rumqttc::QoS::AtLeastOnce, v5::mqttbytes::QoS::AtLeastOnce)
    }
}

/// Builds the client and its connection (nothing is sent until polled).
pub fn open(s: &MqttSettings) -> std::io::Result<(Client, Connection)> {
    let transport = match &s.tls {
        None => None,
        Some(tls) => {
            // rustls needs its crypto chosen once per process.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", p.display())))
            };
            let client_auth = match &tls.client {
                Some((cert, key)) => Some((read(cert)?, read(key)?)),
                None => None,
            };
            Some(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Simple {
                    ca: read(&tls.ca)?,
                    alpn: None,
                    client_auth,
                },
            ))
        }
    };
    let available = s.topics.available();
    Ok(match s.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&s.client_id, &s.host, s.port);
            if let Some(t) = transport {
                o.set_transport(t);
            }
            o.set_keep_alive(s.keep_alive);
            o.set_max_packet_size(MAX_PACKET, MAX_PACKET);
            o.set_last_will(rumqttc::LastWill::new(available, "offline", qos(1).0, true));
            if let Some(u) = &s.username {
                o.set_credentials(u, s.password.clone().unwrap_or_default());
            }
            let (c, conn) = rumqttc::Client::new(o, REQUEST_CAPACITY);
            (Client::V4(c), Connection::V4(Box::new(conn)))
        }
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(&s.client_id, &s.host, s.port);
            if let Some(t) = transport {
                o.set_transport(t);
            }
            o.set_keep_alive(s.keep_alive);
            o.set_max_packet_size(Some(MAX_PACKET as u32));
            o.set_last_will(m5::LastWill::new(
                available,
                "offline",
                qos(1).1,
                true,
                None,
            ));
            if let Some(u) = &s.username {
                o.set_credentials(u, s.password.clone().unwrap_or_default());
            }
            let (c, conn) = v5::Client::new(o, REQUEST_CAPACITY);
            let expiry = u32::try_from(s.expiry.as_secs()).ok().filter(|&e| e > 0);
            (
                Client::V5 { client: c, expiry },
                Connection::V5(Box::new(conn)),
            )
        }
    })
}

impl Client {
    /// Queues a publish without blocking; false when the queue is full.
    pub fn publish(&self, topic: &str, payload: &[u8], q: u8, retain: bool) -> bool {
        match self {
            Client::V4(c) => c.try_publish(topic, qos(q).0, retain, payload).is_ok(),
            Client::V5 { client, expiry } => {
                // Our JSON payloads are objects; `online`/`offline` are text.
                let json = payload.first() == Some(&b'{');
                let props = m5::PublishProperties {
                    content_type: json.then(|| "application/json".to_string()),
                    // Retained state never expires; per-frame messages do.
                    message_expiry_interval: if retain { None } else { *expiry },
                    ..Default::default()
                };
                client
                    .try_publish_with_properties(topic, qos(q).1, retain, payload.to_vec(), props)
                    .is_ok()
            }
        }
    }

    /// Subscribes at QoS 1 without blocking; false when the queue is full.
    pub fn subscribe(&self, filter: &str) -> bool {
        match self {
            Client::V4(c) => c.try_subscribe(filter, qos(1).0).is_ok(),
            Client::V5 { client, .. } => client.try_subscribe(filter, qos(1).1).is_ok(),
        }
    }

    pub fn unsubscribe(&self, filter: &str) -> bool {
        match self {
            Client::V4(c) => c.try_unsubscribe(filter).is_ok(),
            Client::V5 { client, .. } => client.try_unsubscribe(filter).is_ok(),
        }
    }

    pub fn disconnect(&self) {
        let _ = match self {
            Client::V4(c) => c.try_disconnect().is_ok(),
            Client::V5 { client, .. } => client.try_disconnect().is_ok(),
        };
    }
}

impl Connection {
    /// The next event; `None` once every client handle is gone.
    pub fn next(&mut self) -> Option<Ev> {
        use rumqttc::{Event, Packet};
        Some(match self {
            Connection::V4(c) => match c.recv().ok()? {
                Ok(Event::Incoming(Packet::ConnAck(_))) => Ev::Connected,
                Ok(Event::Incoming(Packet::PubAck(a))) => Ev::Acked(a.pkid),
                Ok(Event::Incoming(Packet::SubAck(_))) => Ev::Subscribed,
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    message(Some(p.topic), &p.payload, p.retain)
                }
                Ok(Event::Outgoing(o)) => outgoing(o),
                Ok(_) => Ev::Other,
                Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
                    Ev::Failed(refused(&format!("{code:?}")))
                }
                Err(e) => Ev::Failed(e.to_string()),
            },
            Connection::V5(c) => match c.recv().ok()? {
                Ok(v5::Event::Incoming(m5::Packet::ConnAck(_))) => Ev::Connected,
                Ok(v5::Event::Incoming(m5::Packet::PubAck(a))) => Ev::Acked(a.pkid),
                Ok(v5::Event::Incoming(m5::Packet::SubAck(_))) => Ev::Subscribed,
                Ok(v5::Event::Incoming(m5::Packet::Publish(p))) => message(
                    String::from_utf8(p.topic.to_vec()).ok(),
                    &p.payload,
                    p.retain,
                ),
                Ok(v5::Event::Outgoing(o)) => outgoing(o),
                Ok(_) => Ev::Other,
                Err(v5::ConnectionError::ConnectionRefused(code)) => {
                    Ev::Failed(refused(&format!("{code:?}")))
                }
                Err(e) => Ev::Failed(e.to_string()),
            },
        })
    }

    /// Forgets every request queued for the broker. The publisher resends
    /// what QoS 1 promises from its spool after the next connect, so the
    /// copies rumqttc keeps would only arrive out of order. Returns how many
    /// QoS 0 publishes were discarded unsent: those are lost.
    pub fn forget_queued(&mut self) -> u64 {
        match self {
            Connection::V4(c) => {
                c.eventloop.clean();
                let lost = c.eventloop.pending.iter().filter(|r| {
                    matches!(r, rumqttc::Request::Publish(p) if p.qos == rumqttc::QoS::AtMostOnce)
                });
                let lost = lost.count() as u64;
                c.eventloop.pending.clear();
                lost
            }
            Connection::V5(c) => {
                c.eventloop.clean();
                let lost = c.eventloop.pending.iter().filter(|r| {
                    matches!(r, v5::Request::Publish(p) if p.qos == v5::mqttbytes::QoS::AtMostOnce)
                });
                let lost = lost.count() as u64;
                c.eventloop.pending.clear();
                lost
            }
        }
    }
}

/// An incoming publish, or nothing when its topic is not UTF-8 or its
/// payload too large to be ours.
fn message(topic: Option<String>, payload: &[u8], retain: bool) -> Ev {
    match topic {
        Some(topic) if payload.len() <= MAX_INCOMING => Ev::Message {
            topic,
            payload: payload.to_vec(),
            retain,
        },
        _ => Ev::Other,
    }
}

fn outgoing(o: Outgoing) -> Ev {
    match o {
        Outgoing::Publish(pkid) => Ev::Sent(pkid),
        Outgoing::Disconnect => Ev::Disconnected,
        _ => Ev::Other,
    }
}

/// The broker's refusal, in words a user can act on.
fn refused(code: &str) -> String {
    let why = match code {
        "BadUserNamePassword" | "NotAuthorized" => {
            "wrong user name or password (mqtt.username, mqtt.password)"
        }
        "BadClientId" | "ClientIdentifierNotValid" => "client id refused (mqtt.client_id)",
        "RefusedProtocolVersion" | "UnsupportedProtocolVersion" => {
            "protocol version not supported (mqtt.protocol)"
        }
        _ => "refused",
    };
    format!("broker refused the connection: {why} [{code}]")
}
